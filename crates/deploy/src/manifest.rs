//! Manifests as plain JSON objects: multi-document YAML in, one [`Object`] per document out,
//! each checked to name its `apiVersion`, `kind` and `metadata.name`. Pure.

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::Error;

/// One Kubernetes object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(pub Value);

impl Object {
    fn str_at(&self, pointer: &str) -> &str {
        self.0
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `apiVersion` (`v1`, `apps/v1`).
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }

    /// API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// Version part of `apiVersion`.
    pub fn version(&self) -> &str {
        let v = self.api_version();
        v.rsplit_once('/').map_or(v, |(_, version)| version)
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.0
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
    }

    /// `Kind name` or `Kind namespace/name`, for messages.
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    /// Every container image of a workload (`containers` and `initContainers` of its pod
    /// template), as JSON pointers and values.
    pub fn images(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        for list in ["containers", "initContainers"] {
            let base = format!("/spec/template/spec/{list}");
            let Some(containers) = self.0.pointer(&base).and_then(Value::as_array) else {
                continue;
            };
            for (i, c) in containers.iter().enumerate() {
                if let Some(image) = c.get("image").and_then(Value::as_str) {
                    out.push((format!("{base}/{i}/image"), image.to_owned()));
                }
            }
        }
        out
    }
}

/// Parses every document of `text` (`origin` names the source in errors). Empty documents are
/// skipped; every other one must be a mapping with `apiVersion`, `kind` and `metadata.name`.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Object>, Error> {
    let mut out = vec![];
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let bad = |message: String| Error::Manifest {
            origin: format!("{origin} (document {})", index + 1),
            message,
        };
        let value = Value::deserialize(doc).map_err(|e| bad(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(bad("not a mapping".into()));
        }
        let object = Object(value);
        for (field, present) in [
            ("apiVersion", object.api_version()),
            ("kind", object.kind()),
            ("metadata.name", object.name()),
        ] {
            if present.is_empty() {
                return Err(bad(format!("{field} is missing")));
            }
        }
        out.push(object);
    }
    Ok(out)
}

/// Renders objects back into one multi-document YAML text.
pub fn to_yaml(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(&o.0).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_parsed_and_named() {
        let text = "# a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x402}\n---\n---\n\
                    apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: v, namespace: x402}\n\
                    spec: {template: {spec: {containers: [{name: a, image: 'img-a'}], initContainers: [{name: b, image: 'img-b@sha256:00'}]}}}\n";
        let objects = parse(text, "t.yaml").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].id(), "Namespace x402");
        assert_eq!(
            (objects[0].group(), objects[0].version()),
            ("", "v1"),
            "core group"
        );
        assert_eq!(objects[1].id(), "Deployment x402/v");
        assert_eq!((objects[1].group(), objects[1].version()), ("apps", "v1"));
        assert_eq!(
            objects[1].images(),
            vec![
                (
                    "/spec/template/spec/containers/0/image".to_owned(),
                    "img-a".to_owned()
                ),
                (
                    "/spec/template/spec/initContainers/0/image".to_owned(),
                    "img-b@sha256:00".to_owned()
                ),
            ]
        );
        let again = parse(&to_yaml(&objects), "round trip").unwrap();
        assert_eq!(again, objects);
    }

    #[test]
    fn bad_documents_are_named() {
        let cases = [
            ("- a list\n", "t.yaml (document 1): not a mapping"),
            ("kind: X\nmetadata: {name: a}\n", "apiVersion is missing"),
            ("apiVersion: v1\nmetadata: {name: a}\n", "kind is missing"),
            (
                "apiVersion: v1\nkind: X\nmetadata: {}\n",
                "metadata.name is missing",
            ),
            (
                "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: [\n",
                "t.yaml (document 2)",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text, "t.yaml").unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
