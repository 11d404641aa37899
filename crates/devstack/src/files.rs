//! Files holding secrets (keys, tokens, pre-signed authorizations): owner-only (0600), written
//! to a temporary file in the same directory and renamed into place, so no reader ever sees a
//! partial or world-readable secret.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode of every secret file.
pub const SECRET_MODE: u32 = 0o600;

/// Writes `contents` to `path` with mode 0600 (replacing any older file).
pub fn write_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_MODE)
        .open(&tmp)?;
    // The mode given at creation is filtered by the umask; set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(SECRET_MODE))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_owner_only_even_over_a_wider_file() {
        let dir = std::env::temp_dir().join(format!("obol-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, b"new").unwrap();
        assert_eq!(mode(&path).unwrap(), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
