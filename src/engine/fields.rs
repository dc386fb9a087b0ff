//! Reading the few fields a session needs from a reply in one pass, without building a JSON tree.
//!
//! A reply is read for its id (the correlation pointers) and, for streamed replies, the field
//! a completion rule looks at. Parsing the whole frame into a `serde_json::Value` allocates a
//! map and a string per key on every frame (about six allocations for `{"id":…,"reply":…}`);
//! this walks the frame with serde_json's streaming deserializer instead, follows only the
//! branches a pointer names, skips the rest with `IgnoredAny`, and borrows strings from the
//! frame. Nothing is allocated unless a wanted string has escapes in it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// At most this many distinct pointers (correlation and completion) per scenario: the fields
/// of one frame live in a fixed array on the stack.
pub const MAX_FIELDS: usize = 16;

/// What a frame holds at one pointer.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Found<'a> {
    /// Nothing at that pointer.
    #[default]
    Missing,
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string, borrowed from the frame unless it had escapes.
    Str(Cow<'a, str>),
    /// An object or an array.
    Composite,
}

impl Found<'_> {
    /// Whether this equals a JSON scalar literal (objects and arrays never do).
    pub fn equals(&self, literal: &Value) -> bool {
        match (self, literal) {
            (Found::Null, Value::Null) => true,
            (Found::Bool(a), Value::Bool(b)) => a == b,
            (Found::Number(a), Value::Number(b)) => a == b,
            (Found::Str(a), Value::String(b)) => a == b,
            _ => false,
        }
    }

    /// An id: a non-negative integer, or a string of digits (servers often echo ids as strings).
    pub fn id(&self) -> Option<u64> {
        match self {
            // `5000000012.0` is the same id: a server in JavaScript or Python may send it so.
            Found::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && (0.0..9.007e15).contains(f))
                    .map(|f| f as u64)
            }),
            // A string that is an id, or text with the id inside it as a whole token
            // ("hi 5000000012 from 4"): servers that echo or broadcast the user's text.
            Found::Str(s) => s.trim().parse().ok().or_else(|| token_id(s)),
            _ => None,
        }
    }
}

/// The first run of decimal digits in `text`, bounded by non-digits, that is a message id
/// (a user's stride and above; see `correlate.rs`). One pass, no allocation.
fn token_id(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        // Digits only, so this is valid UTF-8; more than 19 digits overflow and are skipped.
        let id = text
            .get(start..i)
            .and_then(|run| run.parse::<u64>().ok())
            .filter(|id| *id >= crate::engine::correlate::USER_STRIDE);
        if id.is_some() {
            return id;
        }
    }
    None
}

/// The fields of one frame, by the index [`Fields::add`] gave their pointer.
pub type Frame<'a> = [Found<'a>; MAX_FIELDS];

/// A set of JSON pointers (RFC 6901), compiled into reference tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    /// Per pointer: its tokens, each with its array index when it is one.
    pointers: Vec<Vec<(String, Option<usize>)>>,
    /// The pointers as written, for deduplication.
    written: Vec<String>,
}

impl Fields {
    /// The index of `pointer`, added if new. `None` when it is not a JSON pointer (it must be
    /// empty or start with `/`) or when [`MAX_FIELDS`] pointers are already in use.
    pub fn add(&mut self, pointer: &str) -> Option<usize> {
        if let Some(i) = self.written.iter().position(|p| p == pointer) {
            return Some(i);
        }
        if self.written.len() == MAX_FIELDS {
            return None;
        }
        let tokens = match pointer.strip_prefix('/') {
            None if pointer.is_empty() => Vec::new(),
            None => return None,
            Some(rest) => rest
                .split('/')
                .map(|t| {
                    let token = t.replace("~1", "/").replace("~0", "~");
                    let index = array_index(&token);
                    (token, index)
                })
                .collect(),
        };
        self.pointers.push(tokens);
        self.written.push(pointer.to_string());
        Some(self.written.len() - 1)
    }

    /// Reads every pointer's value from `text` into `out`; `Err` when `text` is not JSON.
    pub fn read<'a>(&self, text: &'a str, out: &mut Frame<'a>) -> Result<(), serde_json::Error> {
        out.fill(Found::Missing);
        let all = (1u32 << self.pointers.len()) - 1;
        let mut de = serde_json::Deserializer::from_str(text);
        Node {
            fields: self,
            depth: 0,
            on_path: all,
            out,
        }
        .deserialize(&mut de)?;
        de.end()
    }

    /// Bits of the pointers in `on_path` that end at `depth`.
    fn ending(&self, on_path: u32, depth: usize) -> u32 {
        self.select(on_path, |tokens| tokens.len() == depth)
    }

    /// Bits of the pointers in `on_path` for which `keep` holds.
    fn select(&self, on_path: u32, keep: impl Fn(&[(String, Option<usize>)]) -> bool) -> u32 {
        self.pointers
            .iter()
            .enumerate()
            .filter(|(i, tokens)| on_path & (1 << i) != 0 && keep(tokens))
            .fold(0, |bits, (i, _)| bits | (1 << i))
    }
}

/// A token that indexes arrays: digits without a leading zero (as `Value::pointer` reads it).
fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if digits && (token == "0" || !token.starts_with('0')) {
        token.parse().ok()
    } else {
        None
    }
}

/// One value in the frame, `depth` tokens deep, with the pointers still on its path.
struct Node<'f, 'o, 'a> {
    fields: &'f Fields,
    depth: usize,
    on_path: u32,
    out: &'o mut Frame<'a>,
}

impl<'a> Node<'_, '_, 'a> {
    /// Stores `found` for every pointer that ends here.
    fn set(&mut self, found: &Found<'a>) {
        let ending = self.fields.ending(self.on_path, self.depth);
        for (i, slot) in self.out.iter_mut().enumerate() {
            if ending & (1 << i) != 0 {
                *slot = found.clone();
            }
        }
    }

    /// Marks this object or array found; returns the pointers that go on below it.
    fn open(&mut self) -> u32 {
        self.set(&Found::Composite);
        self.on_path & !self.fields.ending(self.on_path, self.depth)
    }

    /// The node one level down, with the pointers `on_path` that go through it.
    fn child(&mut self, on_path: u32) -> Node<'_, '_, 'a> {
        Node {
            fields: self.fields,
            depth: self.depth + 1,
            on_path,
            out: &mut *self.out,
        }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Node<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Node<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.set(&Found::Null);
        Ok(())
    }

    fn visit_bool<E>(mut self, v: bool) -> Result<(), E> {
        self.set(&Found::Bool(v));
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.set(&Found::Number(v.into()));
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.set(&Found::Number(v.into()));
        Ok(())
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        self.set(&Number::from_f64(v).map_or(Found::Null, Found::Number));
        Ok(())
    }

    fn visit_borrowed_str<E>(mut self, v: &'de str) -> Result<(), E> {
        self.set(&Found::Str(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        if self.fields.ending(self.on_path, self.depth) != 0 {
            self.set(&Found::Str(Cow::Owned(v.to_string())));
        }
        Ok(())
    }

    fn visit_map<M: MapAccess<'de>>(mut self, mut map: M) -> Result<(), M::Error> {
        let deeper = self.open();
        let (fields, depth) = (self.fields, self.depth);
        let key = || Key {
            fields,
            depth,
            on_path: deeper,
        };
        while let Some(on_key) = map.next_key_seed(key())? {
            if on_key == 0 {
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(self.child(on_key))?;
            }
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<(), S::Error> {
        let deeper = self.open();
        for index in 0.. {
            let depth = self.depth;
            let on_index = self
                .fields
                .select(deeper, |tokens| tokens[depth].1 == Some(index));
            let more = if on_index == 0 {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                seq.next_element_seed(self.child(on_index))?.is_some()
            };
            if !more {
                break;
            }
        }
        Ok(())
    }
}

/// An object key: which of the pointers on the path name it next.
struct Key<'f> {
    fields: &'f Fields,
    depth: usize,
    on_path: u32,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<u32, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<u32, E> {
        Ok(self
            .fields
            .select(self.on_path, |tokens| tokens[self.depth].0 == key))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Reads `pointers` from `text` both ways: with [`Fields`] and with `Value::pointer`.
    fn both(text: &str, pointers: &[&str]) -> Vec<(Found<'static>, Option<Value>)> {
        let mut fields = Fields::default();
        let at: Vec<usize> = pointers.iter().map(|p| fields.add(p).unwrap()).collect();
        let mut frame = Frame::default();
        fields.read(text, &mut frame).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        at.iter()
            .zip(pointers)
            .map(|(&i, p)| {
                let found = match &frame[i] {
                    Found::Missing => Found::Missing,
                    Found::Null => Found::Null,
                    Found::Bool(b) => Found::Bool(*b),
                    Found::Number(n) => Found::Number(n.clone()),
                    Found::Str(s) => Found::Str(Cow::Owned(s.to_string())),
                    Found::Composite => Found::Composite,
                };
                (found, value.pointer(p).cloned())
            })
            .collect()
    }

    #[test]
    fn agrees_with_value_pointer_on_every_kind_of_value() {
        let text = r#"{"id": 5000000012, "s": "7", "e": "a\"b", "t": true, "n": null,
            "f": 1.5, "neg": -3, "m": {"rid": 9, "a/b": 1, "t~": 2},
            "arr": [10, {"x": "y"}, [1, 2]], "0": "zero-key"}"#;
        let pointers = [
            "/id", "/s", "/e", "/t", "/n", "/f", "/neg", "/m/rid", "/m/a~1b", "/m/t~0", "/arr/0",
            "/arr/1/x", "/arr/2/1", "/arr/01", "/missing", "/m",
        ];
        for (pointer, (found, value)) in pointers.iter().zip(both(text, &pointers)) {
            match value {
                None => assert_eq!(found, Found::Missing, "{pointer}"),
                Some(Value::Object(_) | Value::Array(_)) => {
                    assert_eq!(found, Found::Composite, "{pointer}");
                }
                Some(v) => assert!(found.equals(&v), "{pointer}: {found:?} vs {v}"),
            }
        }
    }

    #[test]
    fn the_whole_frame_and_nested_pointers_at_once() {
        let found = both("42", &[""]);
        assert_eq!(found[0].0.id(), Some(42));
        let found = both(r#"{"a": {"b": 1}}"#, &["/a", "/a/b", "/0"]);
        assert_eq!(found[0].0, Found::Composite);
        assert_eq!(found[1].0.id(), Some(1));
        assert_eq!(found[2].0, Found::Missing);
        let found = both(r#"["x", "y"]"#, &["/1", "/0", "/2"]);
        assert!(found[0].0.equals(&json!("y")));
        assert!(found[1].0.equals(&json!("x")));
        assert_eq!(found[2].0, Found::Missing);
    }

    #[test]
    fn ids_from_numbers_and_digit_strings_only() {
        let id = |text: &str| {
            let mut fields = Fields::default();
            fields.add("/id");
            let mut frame = Frame::default();
            fields.read(text, &mut frame).ok()?;
            frame[0].id()
        };
        assert_eq!(id(r#"{"id": 5000000012}"#), Some(5_000_000_012));
        assert_eq!(id(r#"{"id": " 5000000012 "}"#), Some(5_000_000_012));
        assert_eq!(id(r#"{"id": -3}"#), None);
        assert_eq!(id(r#"{"id": 1.5}"#), None);
        assert_eq!(id(r#"{"id": null}"#), None);
        assert_eq!(id(r#"{"id": [1]}"#), None);
    }

    #[test]
    fn an_id_inside_a_string_is_found_as_a_whole_token() {
        let id = |text: &str| {
            let mut fields = Fields::default();
            fields.add("/message");
            let mut frame = Frame::default();
            fields.read(text, &mut frame).ok()?;
            frame[0].id()
        };
        let text = r#"{"message": "hi 5000000012 from 4"}"#;
        assert_eq!(id(text), Some(5_000_000_012));
        // Small numbers are not ids; the first run that is one wins.
        let text = r#"{"message": "user 4 says 12 then 7000000003 and 8000000001"}"#;
        assert_eq!(id(text), Some(7_000_000_003));
        assert_eq!(id(r#"{"message": "id:5000000012!"}"#), Some(5_000_000_012));
        // Digits glued to letters still bound the token; escapes are read through.
        assert_eq!(id(r#"{"message": "x5000000012y"}"#), Some(5_000_000_012));
        assert_eq!(id(r#"{"message": "\"5000000012\""}"#), Some(5_000_000_012));
        // No id inside: none, and a run too long for any id is skipped, not wrapped.
        assert_eq!(id(r#"{"message": "hello there 42"}"#), None);
        assert_eq!(id(r#"{"message": "123456789012345678901234"}"#), None);
        assert_eq!(id(r#"{"message": "é 5000000012"}"#), Some(5_000_000_012));
    }

    #[test]
    fn bad_json_and_bad_pointers_are_refused() {
        let mut fields = Fields::default();
        assert_eq!(fields.add("id"), None, "a pointer starts with /");
        fields.add("/id");
        let mut frame = Frame::default();
        for bad in ["", "{", r#"{"id": 1} x"#, r#"{"id": 1,}"#, "nope"] {
            assert!(fields.read(bad, &mut frame).is_err(), "{bad}");
        }
        for i in 0..MAX_FIELDS - 1 {
            assert!(fields.add(&format!("/f{i}")).is_some());
        }
        assert_eq!(fields.add("/one-too-many"), None);
        assert_eq!(fields.add("/id"), Some(0), "known pointers are found again");
    }
}
