//! The in-memory key tree.
//!
//! The root stands for `HKLM\SYSTEM\CurrentControlSet`, so a service's key is
//! `Services\<name>`. Key and value names compare case-insensitively (as the
//! Windows configuration manager does, by upper-casing) and keep the case they
//! were first given. Subkeys list in case-insensitive order (as `RegEnumKeyEx`
//! returns them); values list in the order they were first set.

use std::collections::{BTreeMap, HashMap};
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

/// A key: its values in the order they were first set (a deleted value
/// leaves an empty slot until the slots are compacted), an index of the
/// values by folded name, and its subkeys by folded name. Every lookup is
/// one fold and one hash, whatever the number of values.
#[derive(Clone, Debug, Default)]
struct Key {
    name: String,
    values: Vec<Option<(String, RegValue)>>,
    index: HashMap<String, usize>,
    subkeys: BTreeMap<String, Self>,
}

impl Key {
    fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    fn value(&self, name: &str) -> Option<&RegValue> {
        let slot = *self.index.get(&fold(name))?;
        self.values[slot].as_ref().map(|(_, v)| v)
    }

    fn live_values(&self) -> impl Iterator<Item = &(String, RegValue)> {
        self.values.iter().flatten()
    }

    fn set(&mut self, name: &str, value: RegValue) {
        match self.index.entry(fold(name)) {
            std::collections::hash_map::Entry::Occupied(slot) => {
                if let Some((_, old)) = &mut self.values[*slot.get()] {
                    *old = value;
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(self.values.len());
                self.values.push(Some((name.to_owned(), value)));
            }
        }
    }

    fn delete(&mut self, name: &str) -> bool {
        let Some(slot) = self.index.remove(&fold(name)) else {
            return false;
        };
        self.values[slot] = None;
        // Compact once at most half the slots are live, so deleting and
        // setting values keeps the slots proportional to the live values.
        if self.index.len() * 2 < self.values.len() {
            self.values.retain(Option::is_some);
            for (i, (name, _)) in self.values.iter().flatten().enumerate() {
                self.index.insert(fold(name), i);
            }
        }
        true
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
        if !path.is_empty() {
            writeln!(f, "[{path}]")?;
            for (name, value) in self.live_values() {
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
            .map(|k| k.live_values().map(|(n, v)| (n.as_str(), v)).collect())
    }

    /// Sets a value, creating the key (and its parents) when missing. An
    /// existing value of the same name (any case) is replaced and keeps the
    /// case of its name. The empty name is the key's default value.
    pub fn set_value(&mut self, path: &str, name: &str, value: RegValue) {
        self.create(path).set(name, value);
    }

    /// The value, or `None` when the key or the value does not exist.
    #[must_use]
    pub fn value(&self, path: &str, name: &str) -> Option<&RegValue> {
        self.key(path)?.value(name)
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
        key.delete(name)
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
    fn deleted_values_leave_the_order_of_the_others() {
        let mut reg = Registry::new();
        for i in 0..10 {
            reg.set_value("A", &format!("v{i}"), RegValue::dword(i));
        }
        for i in (0..10).step_by(2) {
            assert!(reg.delete_value("a", &format!("V{i}")));
        }
        reg.set_value("A", "v0", RegValue::dword(100));
        assert!(reg.delete_value("A", "v1"));
        reg.set_value("A", "V3", RegValue::dword(33));
        let listed: Vec<(String, u32)> = reg
            .values("A")
            .unwrap()
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_dword().unwrap()))
            .collect();
        let expected = [("v3", 33), ("v5", 5), ("v7", 7), ("v9", 9), ("v0", 100)];
        assert_eq!(listed, expected.map(|(n, v)| (n.to_owned(), v)).to_vec());
        assert_eq!(reg.value("A", "V9"), Some(&RegValue::dword(9)));
        assert_eq!(reg.value("A", "v8"), None);
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
