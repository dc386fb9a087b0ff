//! Completion rules: when the frames of a streamed reply add up to a complete reply.
//!
//! Written as users think of them: `/done == true`, `/type != "delta"`, `/delta missing`,
//! `/final exists`, `frames 5`; empty means a reply is complete at its first frame.

use serde_json::Value;

use crate::engine::fields::Found;

/// A compiled completion rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Complete {
    /// The first frame completes the reply (a plain request/response server).
    FirstFrame,
    /// The frame's value at the pointer equals (or, negated, differs from) a JSON literal.
    Equals {
        /// JSON pointer.
        pointer: String,
        /// The literal compared with.
        value: Value,
        /// `!=` instead of `==`.
        negate: bool,
    },
    /// The frame has (or, negated, lacks) a value at the pointer.
    Exists {
        /// JSON pointer.
        pointer: String,
        /// `missing` instead of `exists`.
        negate: bool,
    },
    /// The reply is complete at its N-th frame.
    Frames(u32),
}

impl Complete {
    /// Parses a rule; the error says what is valid.
    pub fn parse(rule: &str) -> Result<Complete, String> {
        let rule = rule.trim();
        let bad = |why: &str| {
            format!(
                "`{rule}`: {why}; expected `/done == true`, `/type != \"delta\"`, `/delta missing`, `/final exists`, `frames 5`, or empty"
            )
        };
        if rule.is_empty() {
            return Ok(Complete::FirstFrame);
        }
        if let Some(n) = rule.strip_prefix("frames") {
            return match n.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(Complete::Frames(n)),
                _ => Err(bad("the frame count must be a whole number above 0")),
            };
        }
        if !rule.starts_with('/') {
            return Err(bad("a rule starts with a JSON pointer or `frames`"));
        }
        for (op, negate) in [("==", false), ("!=", true)] {
            if let Some((pointer, literal)) = rule.split_once(op) {
                let value = serde_json::from_str(literal.trim())
                    .ok()
                    .filter(|v: &Value| !v.is_object() && !v.is_array())
                    .ok_or_else(|| {
                        bad("the right-hand side must be a JSON literal (true, 3, \"done\", null)")
                    })?;
                return Ok(Complete::Equals {
                    pointer: pointer.trim().to_string(),
                    value,
                    negate,
                });
            }
        }
        let (pointer, word) = rule
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| bad("missing an operator"))?;
        let negate = match word {
            "exists" => false,
            "missing" => true,
            _ => return Err(bad("unknown operator")),
        };
        Ok(Complete::Exists {
            pointer: pointer.trim().to_string(),
            negate,
        })
    }

    /// The JSON pointer the rule looks at, if any.
    pub fn pointer(&self) -> Option<&str> {
        match self {
            Complete::Equals { pointer, .. } | Complete::Exists { pointer, .. } => Some(pointer),
            Complete::FirstFrame | Complete::Frames(_) => None,
        }
    }

    /// Whether a frame (the `frames`-th of its reply, from 1) completes the reply, given
    /// what the frame holds at [`Complete::pointer`] (`Missing` for rules without one).
    pub fn is_complete(&self, at_pointer: &Found, frames: u32) -> bool {
        match self {
            Complete::FirstFrame => true,
            Complete::Frames(n) => frames >= *n,
            Complete::Equals { value, negate, .. } => at_pointer.equals(value) != *negate,
            Complete::Exists { negate, .. } => (*at_pointer != Found::Missing) != *negate,
        }
    }

    /// Whether replies stream (more than one frame per reply).
    pub fn streams(&self) -> bool {
        !matches!(self, Complete::FirstFrame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fields::{Fields, Frame};

    /// Whether `frame` completes a reply under `rule` as its `frames`-th frame.
    fn completes(rule: &Complete, frame: &str, frames: u32) -> bool {
        let mut fields = Fields::default();
        let at = rule.pointer().map(|p| fields.add(p).unwrap());
        let mut read = Frame::default();
        fields.read(frame, &mut read).unwrap();
        rule.is_complete(at.map_or(&Found::Missing, |i| &read[i]), frames)
    }

    #[test]
    fn equality_rules() {
        let rule = Complete::parse("/done == true").unwrap();
        assert!(completes(&rule, r#"{"done": true}"#, 1));
        assert!(!completes(&rule, r#"{"done": false}"#, 1));
        assert!(!completes(&rule, r#"{}"#, 1));
        let rule = Complete::parse(r#"/type != "delta""#).unwrap();
        assert!(completes(&rule, r#"{"type": "end"}"#, 1));
        assert!(!completes(&rule, r#"{"type": "delta"}"#, 1));
        assert!(completes(&rule, r#"{"reply": "no type at all"}"#, 1));
        let rule = Complete::parse("/choices/0/finish_reason == \"stop\"").unwrap();
        assert!(completes(
            &rule,
            r#"{"choices": [{"finish_reason": "stop"}]}"#,
            1
        ));
        assert!(!completes(
            &rule,
            r#"{"choices": [{"finish_reason": null}]}"#,
            1
        ));
        let rule = Complete::parse("/left == 0").unwrap();
        assert!(completes(&rule, r#"{"left": 0}"#, 1));
        assert!(
            !completes(&rule, r#"{"left": "0"}"#, 1),
            "a string is not a number"
        );
    }

    #[test]
    fn presence_rules() {
        let rule = Complete::parse("/delta missing").unwrap();
        assert!(completes(&rule, r#"{"reply": "x"}"#, 3));
        assert!(!completes(&rule, r#"{"delta": "x"}"#, 3));
        let rule = Complete::parse("/final exists").unwrap();
        assert!(completes(&rule, r#"{"final": null}"#, 1));
        assert!(completes(&rule, r#"{"final": {"text": "x"}}"#, 1));
        assert!(!completes(&rule, r#"{"final_": 1}"#, 1));
    }

    #[test]
    fn frame_counts_and_first_frame() {
        let rule = Complete::parse("frames 3").unwrap();
        assert!(!completes(&rule, r#"{}"#, 2));
        assert!(completes(&rule, r#"{}"#, 3));
        assert_eq!(Complete::parse("").unwrap(), Complete::FirstFrame);
        assert!(!Complete::parse("").unwrap().streams());
        assert!(rule.streams());
    }

    #[test]
    fn bad_rules_say_what_is_valid() {
        for bad in [
            "done == true",
            "/done == yes",
            "/done == [1]",
            "/done == {\"a\": 1}",
            "frames 0",
            "frames x",
            "/done is",
            "/done",
        ] {
            let err = Complete::parse(bad).unwrap_err();
            assert!(err.contains("/done == true"), "{bad}: {err}");
        }
    }
}
