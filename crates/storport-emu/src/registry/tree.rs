//! The in-memory key tree.
//!
//! The root stands for `HKLM\SYSTEM\CurrentControlSet`, so a service's key is
//! `Services\<name>`. Key and value names compare case-insensitively (as the
//! Windows configuration manager does, by upper-casing) and keep the case they
//! were first given. Subkeys list in case-insensitive order (as `RegEnumKeyEx`
//! returns them); values list in the order they were first set.

use std::collections::BTreeMap;
use std::fmt;

use super::value::{RegType, RegValue};

/// The comparison form of a key or value name.
fn fold(name: &str) -> String {
    name.to_uppercase()
}

/// Splits a path such as `Services\vstor\Parameters` into its components.
/// Empty components (leading, trailing or doubled `\`) are ignored.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('\\').filter(|c| !c.is_empty())
}

#[derive(Clone, Debug, Default)]
struct Key {
    name: String,
    values: Vec<(String, RegValue)>,
    subkeys: BTreeMap<String, Self>,
}

impl Key {
    fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    fn value_index(&self, name: &str) -> Option<usize> {
        let folded = fold(name);
        self.values.iter().position(|(n, _)| fold(n) == folded)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
        if !path.is_empty() {
            writeln!(f, "[{path}]")?;
            for (name, value) in &self.values {
                if name.is_empty() {
                    writeln!(f, "  @ = {value}")?;
                } else {
                    writeln!(f, "  \"{name}\" = {value}")?;
                }
            }
        }
        for key in self.subkeys.values() {
            let child = if path.is_empty() {
                key.name.clone()
            } else {
                format!("{path}\\{}", key.name)
            };
            key.write(f, &child)?;
        }
        Ok(())
    }
}

/// An in-memory registry rooted at `HKLM\SYSTEM\CurrentControlSet`.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    root: Key,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&self, path: &str) -> Option<&Key> {
        components(path).try_fold(&self.root, |key, c| key.subkeys.get(&fold(c)))
    }

    fn key_mut(&mut self, path: &str) -> Option<&mut Key> {
        components(path).try_fold(&mut self.root, |key, c| key.subkeys.get_mut(&fold(c)))
    }

    fn create(&mut self, path: &str) -> &mut Key {
        components(path).fold(&mut self.root, |key, c| {
            key.subkeys.entry(fold(c)).or_insert_with(|| Key::named(c))
        })
    }

    /// Creates the key and every missing key above it. Existing keys keep the
    /// case of their names.
    pub fn create_key(&mut self, path: &str) {
        self.create(path);
    }

    /// Whether the key exists (the empty path is the root and always exists).
    #[must_use]
    pub fn key_exists(&self, path: &str) -> bool {
        self.key(path).is_some()
    }

    /// The names of the key's direct subkeys, in case-insensitive order, or
    /// `None` when the key does not exist.
    #[must_use]
    pub fn subkeys(&self, path: &str) -> Option<Vec<String>> {
        self.key(path)
            .map(|k| k.subkeys.values().map(|s| s.name.clone()).collect())
    }

    /// The key's values in the order they were first set, or `None` when the
    /// key does not exist.
    #[must_use]
    pub fn values(&self, path: &str) -> Option<Vec<(&str, &RegValue)>> {
        self.key(path)
            .map(|k| k.values.iter().map(|(n, v)| (n.as_str(), v)).collect())
    }

    /// Sets a value, creating the key (and its parents) when missing. An
    /// existing value of the same name (any case) is replaced and keeps the
    /// case of its name. The empty name is the key's default value.
    pub fn set_value(&mut self, path: &str, name: &str, value: RegValue) {
        let key = self.create(path);
        match key.value_index(name) {
            Some(i) => key.values[i].1 = value,
            None => key.values.push((name.to_owned(), value)),
        }
    }

    /// The value, or `None` when the key or the value does not exist.
    #[must_use]
    pub fn value(&self, path: &str, name: &str) -> Option<&RegValue> {
        let key = self.key(path)?;
        key.value_index(name).map(|i| &key.values[i].1)
    }

    /// The raw view: type number and stored bytes.
    #[must_use]
    pub fn raw(&self, path: &str, name: &str) -> Option<(RegType, &[u8])> {
        self.value(path, name).map(|v| (v.reg_type(), v.data()))
    }

    /// Deletes a value; returns whether it existed.
    pub fn delete_value(&mut self, path: &str, name: &str) -> bool {
        let Some(key) = self.key_mut(path) else {
            return false;
        };
        key.value_index(name)
            .map(|i| key.values.remove(i))
            .is_some()
    }

    /// Deletes a key with everything below it; returns whether it existed.
    /// The root cannot be deleted.
    pub fn delete_key(&mut self, path: &str) -> bool {
        let parts: Vec<&str> = components(path).collect();
        let Some((last, parents)) = parts.split_last() else {
            return false;
        };
        let parent = parents
            .iter()
            .try_fold(&mut self.root, |key, c| key.subkeys.get_mut(&fold(c)));
        parent.is_some_and(|p| p.subkeys.remove(&fold(last)).is_some())
    }
}

impl fmt::Display for Registry {
    /// A dump of every key below the root, one `[path]` header per key (keys
    /// without values included) followed by its values, one per line:
    /// `  "Name" = REG_DWORD 0x0000000e (14)`; the default value shows as `@`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.write(f, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_keep_first_case() {
        let mut reg = Registry::new();
        reg.create_key("Services\\VStor\\Parameters");
        reg.create_key("SERVICES\\vstor\\parameters\\Device");
        assert!(reg.key_exists("services\\VSTOR\\PARAMETERS\\device"));
        assert_eq!(reg.subkeys("services"), Some(vec!["VStor".to_owned()]));
        assert_eq!(
            reg.subkeys("Services\\vstor\\Parameters"),
            Some(vec!["Device".to_owned()])
        );
        assert_eq!(reg.subkeys("Services\\nope"), None);
    }

    #[test]
    fn values_are_case_insensitive_and_replace_in_place() {
        let mut reg = Registry::new();
        reg.set_value("A", "DiskCount", RegValue::dword(1));
        reg.set_value("A", "Other", RegValue::sz("x"));
        reg.set_value("a", "DISKCOUNT", RegValue::dword(2));
        assert_eq!(reg.value("A", "diskcount"), Some(&RegValue::dword(2)));
        let names: Vec<&str> = reg.values("A").unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["DiskCount", "Other"]);
        assert_eq!(
            reg.raw("A", "Other"),
            Some((RegType::SZ, &[b'x', 0, 0, 0][..]))
        );
    }

    #[test]
    fn delete_value_and_key() {
        let mut reg = Registry::new();
        reg.set_value("A\\B\\C", "v", RegValue::dword(1));
        assert!(reg.delete_value("a\\b\\c", "V"));
        assert!(!reg.delete_value("a\\b\\c", "V"));
        assert!(reg.key_exists("A\\B\\C"));
        assert!(reg.delete_key("a\\b"));
        assert!(!reg.key_exists("A\\B\\C"));
        assert!(reg.key_exists("A"));
        assert!(!reg.delete_key("a\\b"));
        assert!(!reg.delete_key(""));
    }

    #[test]
    fn dump_lists_every_key_in_order() {
        let mut reg = Registry::new();
        reg.set_value("Services\\vstor", "Start", RegValue::dword(3));
        reg.create_key("Services\\vstor\\Parameters\\Device");
        reg.set_value(
            "Services\\vstor\\Parameters",
            "BusType",
            RegValue::dword(14),
        );
        reg.set_value("Services\\vstor\\Parameters", "", RegValue::sz("d"));
        let expected = "[Services]\n\
            [Services\\vstor]\n  \"Start\" = REG_DWORD 0x00000003 (3)\n\
            [Services\\vstor\\Parameters]\n  \"BusType\" = REG_DWORD 0x0000000e (14)\n  @ = REG_SZ \"d\"\n\
            [Services\\vstor\\Parameters\\Device]\n";
        assert_eq!(reg.to_string(), expected);
    }
}
