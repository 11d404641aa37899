//! The part of kustomize that `deploy/` uses, so that `obol install` needs no kubectl:
//! `resources` (files, and directories holding a `kustomization.yaml`) and `images` (`name`,
//! `newName`, `newTag`, `digest`). Any other field is refused rather than ignored, so a
//! kustomization that needs more fails loudly here; a test renders `deploy/` with both this and
//! `kubectl kustomize` and compares.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;
use crate::manifest::{self, Object};

/// The file a kustomization directory holds.
pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// One `images:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageOverride {
    /// The image name it applies to (without tag or digest).
    pub name: String,
    /// Replacement name.
    #[serde(default)]
    pub new_name: Option<String>,
    /// Replacement tag.
    #[serde(default)]
    pub new_tag: Option<String>,
    /// Digest (`sha256:…`); wins over any tag.
    #[serde(default)]
    pub digest: Option<String>,
}

/// A `kustomization.yaml`, limited to what this module renders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    /// `kustomize.config.k8s.io/v1beta1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Kustomization`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Files and directories, relative to the kustomization.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Image replacements.
    #[serde(default)]
    pub images: Vec<ImageOverride>,
}

/// Splits an image reference into (name, tag, digest). The tag is what follows the last `:`
/// after the last `/` (a registry port is not a tag).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// The image reference after `overrides` (the first whose name matches); `None` when none does.
pub fn override_image(image: &str, overrides: &[ImageOverride]) -> Option<String> {
    let (name, tag, digest) = split_image(image);
    let o = overrides.iter().find(|o| o.name == name)?;
    let name = o.new_name.as_deref().unwrap_or(name);
    Some(match (&o.digest, &o.new_tag) {
        (Some(d), _) => format!("{name}@{d}"),
        (None, Some(t)) => format!("{name}:{t}"),
        (None, None) => match (tag, digest) {
            (_, Some(d)) => format!("{name}@{d}"),
            (Some(t), None) => format!("{name}:{t}"),
            (None, None) => name.to_owned(),
        },
    })
}

/// Applies `overrides` to every container image of `objects`.
pub fn set_images(objects: &mut [Object], overrides: &[ImageOverride]) {
    for object in objects.iter_mut() {
        for (pointer, image) in object.images() {
            if let Some(new) = override_image(&image, overrides)
                && let Some(slot) = object.0.pointer_mut(&pointer)
            {
                *slot = Value::String(new);
            }
        }
    }
}

/// Reads `<dir>/kustomization.yaml`.
pub fn read(dir: &Path) -> Result<Kustomization, Error> {
    let path = dir.join(KUSTOMIZATION);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| Error::Manifest {
        origin: path.display().to_string(),
        message: format!("{e} (obol renders only resources and images)"),
    })
}

/// Renders the kustomization in `dir`: its resources in order (directories recursively), then
/// its images. Two objects with the same kind, namespace and name are an error.
pub fn render(dir: &Path) -> Result<Vec<Object>, Error> {
    let objects = render_inner(dir, &mut vec![])?;
    let mut seen = BTreeSet::new();
    for o in &objects {
        if !seen.insert(o.id()) {
            return Err(Error::Manifest {
                origin: dir.display().to_string(),
                message: format!("{} is declared twice", o.id()),
            });
        }
    }
    Ok(objects)
}

fn render_inner(dir: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Object>, Error> {
    let canonical = dir.canonicalize().map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })?;
    if stack.contains(&canonical) {
        return Err(Error::Manifest {
            origin: dir.display().to_string(),
            message: "the kustomizations include each other".into(),
        });
    }
    stack.push(canonical);
    let k = read(dir)?;
    let mut objects = vec![];
    for resource in &k.resources {
        let path = dir.join(resource);
        if path.is_dir() {
            objects.extend(render_inner(&path, stack)?);
        } else {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            objects.extend(manifest::parse(&text, &path.display().to_string())?);
        }
    }
    set_images(&mut objects, &k.images);
    stack.pop();
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(
        name: &str,
        new_name: Option<&str>,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> ImageOverride {
        ImageOverride {
            name: name.into(),
            new_name: new_name.map(Into::into),
            new_tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn image_references_split() {
        let cases = [
            ("a", ("a", None, None)),
            ("a:1", ("a", Some("1"), None)),
            ("reg:5000/a", ("reg:5000/a", None, None)),
            (
                "reg:5000/a:1@sha256:ab",
                ("reg:5000/a", Some("1"), Some("sha256:ab")),
            ),
            ("a@sha256:ab", ("a", None, Some("sha256:ab"))),
        ];
        for (image, expected) in cases {
            assert_eq!(split_image(image), expected, "{image}");
        }
    }

    #[test]
    fn overrides_follow_kustomize() {
        let d = "sha256:1111";
        let cases: [(&str, ImageOverride, Option<&str>); 7] = [
            ("a", o("a", None, None, Some(d)), Some("a@sha256:1111")),
            ("a:old", o("a", None, None, Some(d)), Some("a@sha256:1111")),
            (
                "a@sha256:0000",
                o("a", Some("r/x"), None, Some(d)),
                Some("r/x@sha256:1111"),
            ),
            ("a:old", o("a", None, Some("new"), None), Some("a:new")),
            (
                "a@sha256:0000",
                o("a", Some("r/x"), None, None),
                Some("r/x@sha256:0000"),
            ),
            ("a:1", o("a", Some("r/x"), None, None), Some("r/x:1")),
            ("ab", o("a", None, None, Some(d)), None),
        ];
        for (image, rule, expected) in cases {
            assert_eq!(
                override_image(image, std::slice::from_ref(&rule)).as_deref(),
                expected,
                "{image} with {rule:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = std::env::temp_dir().join(format!("obol-kustomize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(KUSTOMIZATION), "resources: []\npatches: []\n").unwrap();
        let error = render(&dir).unwrap_err().to_string();
        assert!(error.contains("patches"), "{error}");
        std::fs::write(dir.join(KUSTOMIZATION), "resources: [a.yaml, a.yaml]\n").unwrap();
        std::fs::write(
            dir.join("a.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )
        .unwrap();
        let error = render(&dir).unwrap_err().to_string();
        assert!(error.contains("Namespace a is declared twice"), "{error}");
        std::fs::write(dir.join(KUSTOMIZATION), "resources: [missing.yaml]\n").unwrap();
        let error = render(&dir).unwrap_err().to_string();
        assert!(error.contains("missing.yaml"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
