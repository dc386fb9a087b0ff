//! Message templates: compiled once into parts, rendered per message into a reused buffer.

use std::fmt::Write;

/// The built-in placeholders, as listed in error messages.
pub const PLACEHOLDERS: &str = "{{user}}, {{seq}}, {{id}}, {{now_ms}}, {{random}}, {{room}}";

/// A compiled template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// The user's number, 0-based.
    User,
    /// The user's message counter, 1-based.
    Seq,
    /// A number unique to this message in the run; replies carry it back.
    Id,
    /// Wall-clock milliseconds since the Unix epoch at render time.
    NowMs,
    /// A pseudo-random non-negative integer, new per message.
    Random,
    /// A column of the user's CSV row, by index.
    Column(usize),
    /// The user's room (`[rooms] size`): user / size, 0 without rooms.
    Room,
}

/// The values filled into one message.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// `{{user}}`
    pub user: u32,
    /// `{{seq}}`
    pub seq: u64,
    /// `{{id}}`
    pub id: u64,
    /// `{{now_ms}}`
    pub now_ms: u64,
    /// `{{random}}`
    pub random: u64,
    /// The user's CSV row (`{{column}}`); empty without a data file.
    pub row: &'a [String],
    /// `{{room}}`
    pub room: u32,
}

impl Template {
    /// Compiles `source`, where `columns` are the CSV column names a template may use; an
    /// error names the column of the template and the valid placeholders.
    pub fn compile(source: &str, columns: &[String]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let column = source.len() - rest.len() + open + 1;
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` at column {column}"))?;
            parts.push(match after[..close].trim() {
                "user" => Part::User,
                "seq" => Part::Seq,
                "id" => Part::Id,
                "now_ms" => Part::NowMs,
                "random" => Part::Random,
                // A data file's own `room` column fills `{{room}}` when it has one (rooms
                // by `[rooms] size` then refuse it: see `resolve.rs`).
                "room" if !columns.iter().any(|c| c == "room") => Part::Room,
                other => match columns.iter().position(|c| c == other) {
                    Some(i) => Part::Column(i),
                    None => {
                        let data = if columns.is_empty() {
                            String::from(" (and the columns of a --data CSV file)")
                        } else {
                            format!(", and the data columns {{{{{}}}}}", columns.join("}}, {{"))
                        };
                        return Err(format!(
                            "unknown placeholder `{{{{{other}}}}}` at column {column}; valid: {PLACEHOLDERS}{data}"
                        ));
                    }
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.len(),
                _ => 0,
            })
            .sum();
        Ok(Template { parts, literal_len })
    }

    /// Whether the template contains `{{id}}` (needed to match replies to requests).
    pub fn has_id(&self) -> bool {
        self.parts.contains(&Part::Id)
    }

    /// A capacity that holds a rendered message without growing: the literals plus room
    /// for every placeholder's largest number.
    pub fn capacity_hint(&self) -> usize {
        self.literal_len + 20 * self.parts.len()
    }

    /// Whether rendering needs the wall clock (`{{now_ms}}`).
    pub fn uses_clock(&self) -> bool {
        self.parts.contains(&Part::NowMs)
    }

    /// Clears `out` and renders one message into it (no allocation once `out` is large enough).
    pub fn render(&self, vars: Vars, out: &mut String) {
        out.clear();
        self.render_into(vars, out);
    }

    /// Appends one rendered message to `out` (a `String`, or the `BytesMut` a session sends from).
    pub fn render_into(&self, vars: Vars, out: &mut impl Write) {
        for part in &self.parts {
            // Writing into memory cannot fail.
            let _ = match part {
                Part::Literal(s) => out.write_str(s),
                Part::User => write!(out, "{}", vars.user),
                Part::Seq => write!(out, "{}", vars.seq),
                Part::Id => write!(out, "{}", vars.id),
                Part::NowMs => write!(out, "{}", vars.now_ms),
                Part::Random => write!(out, "{}", vars.random),
                Part::Column(i) => out.write_str(vars.row.get(*i).map_or("", String::as_str)),
                Part::Room => write!(out, "{}", vars.room),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, vars: Vars) -> String {
        let mut out = String::new();
        Template::compile(src, &[]).unwrap().render(vars, &mut out);
        out
    }

    const V: Vars<'static> = Vars {
        user: 3,
        seq: 12,
        id: 4_000_000_012,
        now_ms: 1_700_000_000_123,
        random: 99,
        row: &[],
        room: 7,
    };

    #[test]
    fn fills_every_placeholder() {
        assert_eq!(
            render(r#"{"id": {{id}}, "u": {{user}}, "s": "{{seq}}"}"#, V),
            r#"{"id": 4000000012, "u": 3, "s": "12"}"#
        );
        assert_eq!(render("room-{{room}}", V), "room-7");
        // A data file's `room` column fills it instead (rooms by size then refuse the file).
        let columns = [String::from("room")];
        let t = Template::compile("room-{{room}}", &columns).unwrap();
        let row = [String::from("red")];
        let mut out = String::new();
        t.render(Vars { row: &row, ..V }, &mut out);
        assert_eq!(out, "room-red");
    }

    #[test]
    fn no_placeholders_and_empty() {
        assert_eq!(render("ping", V), "ping");
        assert_eq!(render("", V), "");
        assert!(!Template::compile("ping", &[]).unwrap().has_id());
    }

    #[test]
    fn adjacent_and_spaced_placeholders() {
        assert_eq!(render("{{user}}{{seq}}{{ id }}", V), "3124000000012");
    }

    #[test]
    fn single_braces_are_literal() {
        assert_eq!(render("{a} {{user}} }", V), "{a} 3 }");
    }

    #[test]
    fn unknown_placeholder_is_named_with_its_column() {
        let err = Template::compile("ab{{name}}", &[]).unwrap_err();
        assert!(
            err.contains("{{name}}") && err.contains("column 3"),
            "{err}"
        );
        assert!(err.contains(PLACEHOLDERS), "{err}");
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        let err = Template::compile("x {{user", &[]).unwrap_err();
        assert!(
            err.contains("unclosed") && err.contains("column 3"),
            "{err}"
        );
    }

    #[test]
    fn rendering_reuses_the_buffer() {
        let t = Template::compile(
            r#"{"id": {{id}}, "t": {{now_ms}}, "r": {{random}}, "room": {{room}}}"#,
            &[],
        )
        .unwrap();
        let mut out = String::with_capacity(t.capacity_hint());
        let cap = out.capacity();
        for seq in 0..1000 {
            t.render(
                Vars {
                    user: u32::MAX,
                    seq,
                    id: u64::MAX,
                    now_ms: u64::MAX,
                    random: u64::MAX,
                    row: &[],
                    room: u32::MAX,
                },
                &mut out,
            );
        }
        assert_eq!(out.capacity(), cap, "buffer grew");
    }

    #[test]
    fn clock_random_and_csv_columns() {
        let columns = vec![String::from("name"), String::from("token")];
        let row = vec![String::from("ann"), String::from("t-1")];
        let t = Template::compile("{{name}}:{{token}}:{{now_ms}}:{{random}}", &columns).unwrap();
        assert!(t.uses_clock());
        let mut out = String::new();
        t.render(Vars { row: &row, ..V }, &mut out);
        assert_eq!(out, "ann:t-1:1700000000123:99");
    }

    #[test]
    fn unknown_column_lists_the_data_columns() {
        let columns = vec![String::from("name")];
        let err = Template::compile("{{nmae}}", &columns).unwrap_err();
        assert!(
            err.contains("{{nmae}}") && err.contains("{{name}}"),
            "{err}"
        );
    }
}
