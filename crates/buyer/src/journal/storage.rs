//! The files under the journal, behind a small trait so tests can simulate crashes.
//!
//! The contract mirrors POSIX: `write` and `append` may be lost until `sync` of that file
//! returns; a `rename` (and a file's creation) may be lost until `sync_dir` returns.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

/// A flat directory of named files.
pub trait Storage: Send + Sync {
    /// The whole content of `name`, or `None` when it does not exist.
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Creates or truncates `name` and writes `data` (not durable until [`Storage::sync`]).
    fn write(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Appends `data` to `name` (not durable until [`Storage::sync`]).
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Makes the content of `name` durable.
    fn sync(&self, name: &str) -> io::Result<()>;
    /// Atomically replaces `to` with `from` (not durable until [`Storage::sync_dir`]).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name` if it exists.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// [`Storage`] on a real directory, keeping one open handle per file it wrote.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    handles: Mutex<HashMap<String, File>>,
}

impl FileStorage {
    /// Uses `dir`, creating it (mode 0755 via umask) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Storage for FileStorage {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.path(name))?;
        file.write_all(data)?;
        self.handles.lock().insert(name.to_owned(), file);
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut handles = self.handles.lock();
        let file = match handles.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(name))?,
            ),
        };
        // A handle from `write` is positioned at its end, which is where appends go.
        file.write_all(data)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let handles = self.handles.lock();
        match handles.get(name) {
            Some(file) => file.sync_data(),
            None => File::open(self.path(name))?.sync_data(),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut handles = self.handles.lock();
        fs::rename(self.path(from), self.path(to))?;
        // The handle follows its file: `to` now names the file `from` named.
        handles.remove(to);
        if let Some(file) = handles.remove(from) {
            handles.insert(to.to_owned(), file);
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.handles.lock().remove(name);
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// [`Storage`] in memory, for `--state ""` (the Go buyer's in-memory mode): nothing survives
/// a restart.
#[derive(Debug, Default)]
pub struct MemStorage(Mutex<HashMap<String, Vec<u8>>>);

impl Storage for MemStorage {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().get(name).cloned())
    }

    fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.0.lock().insert(name.to_owned(), data.to_vec());
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .entry(name.to_owned())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.0.lock();
        let data = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        files.insert(to.to_owned(), data);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.lock().remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}
