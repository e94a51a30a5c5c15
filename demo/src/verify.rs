//! `/verify`: request validation with FastAPI/pydantic v2 error shapes, and the scoring work
//! (sentence splitting, citation extraction, similarity, confidence) the real Auditor does.
//!
//! The real service embeds sentences with a transformer; here a sentence is scored by how many
//! of its content-word character trigrams appear in a source (containment), which is cheap,
//! deterministic, robust to German inflection and still separates supported from made-up
//! sentences. Everything else (components, weights, thresholds, labels) follows the real
//! `ConfidenceEngine`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// One element of an error location: `"body"`, a field name, or a list index / JSON position.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    /// A field name.
    Key(&'static str),
    /// A list index (or, for `json_invalid`, the character position of the decode error).
    Index(usize),
}

/// One entry of FastAPI's `{"detail": [...]}` (pydantic v2 `errors(include_url=False)`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Pydantic error type, e.g. `missing`, `string_too_short`, `greater_than_equal`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: always starts with `"body"`.
    pub loc: Vec<Loc>,
    /// Human-readable message, worded as pydantic words it.
    pub msg: Cow<'static, str>,
    /// The offending input (for `missing`: the object the field is missing from).
    pub input: Value,
    /// Constraint context, when pydantic gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl FieldError {
    fn new(kind: &'static str, loc: Vec<Loc>, msg: &'static str, input: Value) -> Self {
        FieldError {
            kind,
            loc,
            msg: Cow::Borrowed(msg),
            input,
            ctx: None,
        }
    }

    fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

/// Why a `/verify` body was not accepted before field validation.
#[derive(Debug)]
pub enum BodyRejection {
    /// 422 with these errors (e.g. `json_invalid`).
    Invalid(Vec<FieldError>),
    /// 400 `There was an error parsing the body` (FastAPI's answer to undecodable bytes).
    Undecodable,
}

/// Decodes the body the way FastAPI does before validating it against the model:
/// an empty body is "missing", JSON is decoded only for JSON content types (or none),
/// anything else reaches the model as raw text.
pub fn decode_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, BodyRejection> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let is_json = match content_type {
        None => true,
        Some(ct) => {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match mime.split_once('/') {
                Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
                _ => false,
            }
        }
    };
    if !is_json {
        return Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| BodyRejection::Undecodable)?;
    serde_json::from_str::<Value>(text).map_err(|e| {
        let (pos, msg) = python_json_error(text, &e);
        BodyRejection::Invalid(vec![FieldError::new(
            "json_invalid",
            vec![Loc::Key("body"), Loc::Index(pos)],
            "JSON decode error",
            Value::Object(Map::new()),
        )
        .with_ctx(json!({ "error": msg }))])
    })
}

/// Maps a serde_json error to Python's `json.JSONDecodeError` (character position, message).
fn python_json_error(text: &str, e: &serde_json::Error) -> (usize, &'static str) {
    // serde_json reports a 1-based line and column (in bytes) of the offending character.
    let mut byte_pos = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        if i + 1 == e.line() {
            byte_pos += e.column().saturating_sub(1).min(line.len());
            break;
        }
        byte_pos += line.len() + 1;
    }
    let s = e.to_string();
    let (byte_pos, msg) = if e.is_eof() {
        // Python says what it expected at the end; replay the structure to find out.
        eof_expectation(text)
    } else if s.starts_with("trailing characters") {
        (byte_pos, "Extra data")
    } else if s.starts_with("key must be a string") {
        (
            byte_pos,
            "Expecting property name enclosed in double quotes",
        )
    } else if s.starts_with("expected `:`") {
        (byte_pos, "Expecting ':' delimiter")
    } else if s.starts_with("expected `,` or `}`") || s.starts_with("expected `,` or `]`") {
        (byte_pos, "Expecting ',' delimiter")
    } else if s.starts_with("trailing comma") {
        let msg = if text.as_bytes().get(byte_pos) == Some(&b'}') {
            "Expecting property name enclosed in double quotes"
        } else {
            "Expecting value"
        };
        (byte_pos, msg)
    } else if s.starts_with("control character") {
        (byte_pos, "Invalid control character at")
    } else if s.starts_with("invalid escape") {
        // serde points after the backslash, Python at it.
        (byte_pos.saturating_sub(1), "Invalid \\escape")
    } else if s.starts_with("expected ident") {
        // A misspelt literal (`tru`): Python points at its first letter.
        let head = &text[..byte_pos.min(text.len())];
        let start = head
            .rfind(|c: char| !c.is_ascii_alphabetic())
            .map_or(0, |i| i + 1);
        (start, "Expecting value")
    } else {
        (byte_pos, "Expecting value")
    };
    let mut byte_pos = byte_pos.min(text.len());
    while !text.is_char_boundary(byte_pos) {
        byte_pos -= 1;
    }
    (text[..byte_pos].chars().count(), msg)
}

/// For a document that ends too early: where Python's decoder stops and what it expected.
fn eof_expectation(text: &str) -> (usize, &'static str) {
    #[derive(Clone, Copy, PartialEq)]
    enum Want {
        Value,
        Key,
        Colon,
        CommaOrEnd,
    }
    let mut stack: Vec<bool> = Vec::new(); // true = object
    let mut want = Want::Value;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'{' | b'[' => {
                stack.push(b == b'{');
                want = if b == b'{' { Want::Key } else { Want::Value };
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                want = Want::CommaOrEnd;
                i += 1;
            }
            b':' => {
                want = Want::Value;
                i += 1;
            }
            b',' => {
                want = if stack.last() == Some(&true) {
                    Want::Key
                } else {
                    Want::Value
                };
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if !closed {
                    return (start, "Unterminated string starting at");
                }
                want = if want == Want::Key {
                    Want::Colon
                } else {
                    Want::CommaOrEnd
                };
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r,:]}".contains(&bytes[i]) {
                    i += 1;
                }
                let token = &text[start..i];
                let number = token.parse::<f64>().is_ok();
                if i == bytes.len() && !number && !matches!(token, "true" | "false" | "null") {
                    // A literal cut short (`nul`): Python expected a value where it began.
                    return (start, "Expecting value");
                }
                want = Want::CommaOrEnd;
            }
        }
    }
    let msg = match (want, stack.last()) {
        (Want::Key, _) => "Expecting property name enclosed in double quotes",
        (Want::Colon, _) => "Expecting ':' delimiter",
        (Want::CommaOrEnd, Some(_)) => "Expecting ',' delimiter",
        _ => "Expecting value",
    };
    (text.len(), msg)
}

/// A validated source snippet.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Source text (non-empty).
    pub text: &'a str,
    /// Retrieval score in 0..=1, if given.
    pub score: Option<f64>,
}

/// A validated `/verify` request; borrows from the decoded body.
#[derive(Debug)]
pub struct VerifyRequest<'a> {
    /// The answer to verify (non-empty).
    pub answer: &'a str,
    /// At least one source.
    pub sources: Vec<Source<'a>>,
    /// Request metadata, echoed back.
    pub metadata: Option<&'a Map<String, Value>>,
}

const MODEL_ATTRS: &str = "Input should be a valid dictionary or object to extract fields from";

fn loc(parts: &[Loc]) -> Vec<Loc> {
    parts.to_vec()
}

/// Validates the decoded body against the real `VerifyRequest` model, collecting every error
/// in field order as pydantic does. Unknown fields (`threshold`, `strict_mode`, `config`, …)
/// are ignored.
pub fn validate(body: &Value) -> Result<VerifyRequest<'_>, Vec<FieldError>> {
    let map = match body {
        Value::Object(map) => map,
        Value::Null => {
            return Err(vec![FieldError::new(
                "missing",
                loc(&[Loc::Key("body")]),
                "Field required",
                Value::Null,
            )]);
        }
        other => {
            return Err(vec![FieldError::new(
                "model_attributes_type",
                loc(&[Loc::Key("body")]),
                MODEL_ATTRS,
                other.clone(),
            )]);
        }
    };
    let mut errors = Vec::new();
    let answer = check_str(map, body, &[Loc::Key("body")], "answer", true, &mut errors);

    let mut sources = Vec::new();
    match map.get("sources") {
        None => errors.push(FieldError::new(
            "missing",
            loc(&[Loc::Key("body"), Loc::Key("sources")]),
            "Field required",
            body.clone(),
        )),
        Some(Value::Array(items)) => {
            let before = errors.len();
            for (i, item) in items.iter().enumerate() {
                if let Some(src) = validate_source(item, i, &mut errors) {
                    sources.push(src);
                }
            }
            if items.is_empty() && errors.len() == before {
                errors.push(
                    FieldError::new(
                        "too_short",
                        loc(&[Loc::Key("body"), Loc::Key("sources")]),
                        "List should have at least 1 item after validation, not 0",
                        Value::Array(Vec::new()),
                    )
                    .with_ctx(json!({"field_type": "List", "min_length": 1, "actual_length": 0})),
                );
            }
        }
        Some(other) => errors.push(FieldError::new(
            "list_type",
            loc(&[Loc::Key("body"), Loc::Key("sources")]),
            "Input should be a valid list",
            other.clone(),
        )),
    }

    let metadata = match map.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            errors.push(FieldError::new(
                "dict_type",
                loc(&[Loc::Key("body"), Loc::Key("metadata")]),
                "Input should be a valid dictionary",
                other.clone(),
            ));
            None
        }
    };

    match answer {
        Some(answer) if errors.is_empty() => Ok(VerifyRequest {
            answer,
            sources,
            metadata,
        }),
        _ => Err(errors),
    }
}

/// Checks a `str` field (`min_length=1` when `non_empty`); `None` when absent/invalid/null.
fn check_str<'a>(
    map: &'a Map<String, Value>,
    parent: &Value,
    prefix: &[Loc],
    field: &'static str,
    required_non_empty: bool,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let mut at = prefix.to_vec();
    at.push(Loc::Key(field));
    match map.get(field) {
        None if required_non_empty => {
            errors.push(FieldError::new(
                "missing",
                at,
                "Field required",
                parent.clone(),
            ));
            None
        }
        None => None,
        Some(Value::Null) if !required_non_empty => None,
        Some(Value::String(s)) if required_non_empty && s.is_empty() => {
            errors.push(
                FieldError::new(
                    "string_too_short",
                    at,
                    "String should have at least 1 character",
                    Value::String(String::new()),
                )
                .with_ctx(json!({"min_length": 1})),
            );
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(FieldError::new(
                "string_type",
                at,
                "Input should be a valid string",
                other.clone(),
            ));
            None
        }
    }
}

fn validate_source<'a>(
    item: &'a Value,
    index: usize,
    errors: &mut Vec<FieldError>,
) -> Option<Source<'a>> {
    let prefix = [Loc::Key("body"), Loc::Key("sources"), Loc::Index(index)];
    let Value::Object(map) = item else {
        errors.push(FieldError::new(
            "model_attributes_type",
            prefix.to_vec(),
            MODEL_ATTRS,
            item.clone(),
        ));
        return None;
    };
    let before = errors.len();
    let text = check_str(map, item, &prefix, "text", true, errors);
    check_str(map, item, &prefix, "source_id", false, errors);
    let score = check_score(map.get("score"), &prefix, errors);
    match text {
        Some(text) if errors.len() == before => Some(Source { text, score }),
        _ => None,
    }
}

/// `score: Optional[float] = Field(None, ge=0.0, le=1.0)` in pydantic's lax mode: numbers,
/// booleans and numeric strings are accepted.
fn check_score(value: Option<&Value>, prefix: &[Loc], errors: &mut Vec<FieldError>) -> Option<f64> {
    let value = value?;
    let mut at = prefix.to_vec();
    at.push(Loc::Key("score"));
    let number = match value {
        Value::Null => return None,
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(v) => v,
            Err(_) => {
                errors.push(FieldError::new(
                    "float_parsing",
                    at,
                    "Input should be a valid number, unable to parse string as a number",
                    value.clone(),
                ));
                return None;
            }
        },
        _ => {
            errors.push(FieldError::new(
                "float_type",
                at,
                "Input should be a valid number",
                value.clone(),
            ));
            return None;
        }
    };
    if number < 0.0 {
        errors.push(
            FieldError::new(
                "greater_than_equal",
                at,
                "Input should be greater than or equal to 0",
                value.clone(),
            )
            .with_ctx(json!({"ge": 0.0})),
        );
        return None;
    }
    // NaN fails `le`, as in pydantic.
    if number.is_nan() || number > 1.0 {
        errors.push(
            FieldError::new(
                "less_than_equal",
                at,
                "Input should be less than or equal to 1",
                value.clone(),
            )
            .with_ctx(json!({"le": 1.0})),
        );
        return None;
    }
    Some(number)
}

// ---------------------------------------------------------------------------------------------
// Sentences
// ---------------------------------------------------------------------------------------------

/// Sentences shorter than this (in characters) are dropped, as in the real processor.
const MIN_SENTENCE_CHARS: usize = 3;

/// Words that end with a period without ending the sentence (German legal writing).
#[rustfmt::skip]
fn is_abbreviation(word: &str) -> bool {
    matches!(
        word,
        "Abs" | "Nr" | "Nrn" | "Art" | "Artt" | "Rn" | "Rdnr" | "Rz" | "lit" | "Buchst" | "Alt"
            | "Var" | "Hs" | "Halbs" | "Anm" | "Aufl" | "Bd" | "vgl" | "Vgl" | "bzw" | "ca"
            | "ggf" | "Ggf" | "etc" | "usw" | "evtl" | "insb" | "Insb" | "sog" | "bspw" | "gem"
            | "inkl" | "zzgl" | "ff" | "Dr" | "Prof" | "Hrsg" | "Urt" | "Beschl" | "Az" | "Fn"
            | "Kap" | "Ziff" | "Tz" | "Jh" | "Mio" | "Mrd" | "Tsd" | "Str" | "St" | "BGBl" | "ABl"
            | "Abl" | "Verf" | "Einl" | "Anh" | "Bsp" | "allg" | "ausf" | "entspr" | "m.w.N"
            | "z.B" | "Z.B" | "z.T" | "u.a" | "U.a" | "i.V.m" | "i.S.d" | "i.S.v" | "i.d.R"
            | "i.d.F" | "d.h" | "D.h" | "s.o" | "s.u" | "u.U" | "a.F" | "n.F" | "o.g" | "u.ä"
            | "a.A" | "h.M" | "e.V" | "v.a"
    )
}

/// Words after which a small number is a section number, so `… nach § 195.` ends a sentence.
fn is_citation_marker(word: &str) -> bool {
    matches!(
        word,
        "§" | "§§" | "Art" | "Art." | "Artt." | "Abs." | "Nr." | "S." | "Satz" | "Artikel"
    )
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '“' | '»' | '«' | ')' | ']')
}

fn starts_sentence(c: char) -> bool {
    c.is_uppercase()
        || c.is_ascii_digit()
        || matches!(
            c,
            '§' | '"' | '„' | '“' | '»' | '«' | '(' | '[' | '\'' | '‚'
        )
}

/// The whitespace-delimited word that ends right before byte `end` (openers stripped).
fn word_before(text: &str, end: usize) -> (&str, usize) {
    let head = &text[..end];
    let start = head
        .rfind(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '"' | '„' | '»' | '«'))
        .map(|i| i + head[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(0);
    (&head[start..], start)
}

/// Splits an answer into sentences without breaking at German legal abbreviations
/// (`Abs.`, `Nr.`, `S.`, `z.B.`, `i.V.m.`, `ff.`), initials or ordinals (`am 1. Januar`).
/// Returns trimmed slices of `text`.
pub fn split_sentences<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    out.clear();
    let bytes = text.as_bytes();
    let mut start = 0usize;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_terminator(c) {
            continue;
        }
        // Swallow runs like `?!`, `...` and closing quotes/brackets.
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = iter.peek() {
            if is_terminator(d) || is_closer(d) {
                end = j + d.len_utf8();
                iter.next();
            } else {
                break;
            }
        }
        let at_end = end >= bytes.len();
        if !at_end {
            let Some(next) = text[end..].chars().next() else {
                break;
            };
            if !next.is_whitespace() {
                continue;
            }
            let Some(first) = text[end..].trim_start().chars().next() else {
                break;
            };
            if !starts_sentence(first) {
                continue;
            }
            if c == '.' && end == i + 1 && !period_ends_sentence(text, i) {
                continue;
            }
        }
        push_sentence(&text[start..end], out);
        start = end;
    }
    if start < text.len() {
        push_sentence(&text[start..], out);
    }
}

fn period_ends_sentence(text: &str, dot: usize) -> bool {
    let (word, word_start) = word_before(text, dot);
    if word.is_empty() {
        // A free-standing `.` (e.g. an ellipsis written `Körper ... Die`): trust the capital.
        return true;
    }
    if is_abbreviation(word) {
        return false;
    }
    let mut chars = word.chars();
    if let (Some(only), None) = (chars.next(), chars.next()) {
        // Initials and single-letter abbreviations (`S.`, `f.`).
        if only.is_alphabetic() {
            return false;
        }
    }
    if word.len() <= 2 && word.bytes().all(|b| b.is_ascii_digit()) {
        // `1.` is an ordinal unless it is the number of a cited section (`… nach § 195.`).
        let (prev, _) = word_before(text, text[..word_start].trim_end().len());
        return is_citation_marker(prev);
    }
    true
}

fn push_sentence<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let s = s.trim();
    if s.chars().take(MIN_SENTENCE_CHARS).count() >= MIN_SENTENCE_CHARS {
        out.push(s);
    }
}

// ---------------------------------------------------------------------------------------------
// Citations
// ---------------------------------------------------------------------------------------------

/// A tiny cursor over a `&str` for the hand-written citation grammar (no regex per request).
#[derive(Clone, Copy)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) -> bool {
        let rest = self.rest();
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        rest.len() != trimmed.len()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// A word literal that must not continue with a letter (`Abs.` is fine, `Absatz` is not `Abs`).
    fn eat_word(&mut self, lit: &str) -> bool {
        let rest = self.rest();
        if !rest.starts_with(lit) {
            return false;
        }
        let after = rest[lit.len()..].chars().next();
        if lit.ends_with('.') || !after.is_some_and(char::is_alphanumeric) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// `823`, `823a`, `12`.
    fn eat_number(&mut self) -> bool {
        let rest = self.rest();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        let mut len = digits;
        let tail = &rest.as_bytes()[digits..];
        if let Some(&b) = tail.first() {
            let next_is_letter = tail.get(1).is_some_and(|n| n.is_ascii_alphabetic());
            if b.is_ascii_lowercase() && !next_is_letter {
                len += 1;
            }
        }
        self.pos += len;
        true
    }

    /// A law code: `BGB`, `StGB`, `GG`, `AktG`, `GmbHG`, `DSGVO`, optionally `SGB V`.
    fn eat_law(&mut self) -> bool {
        let rest = self.rest();
        let len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let word = &rest[..len];
        let upper = word.bytes().filter(u8::is_ascii_uppercase).count();
        let ok = (2..=10).contains(&len)
            && word.as_bytes()[0].is_ascii_uppercase()
            && upper >= 2
            && !rest[len..].starts_with(|c: char| c.is_alphanumeric());
        if !ok {
            return false;
        }
        self.pos += len;
        // Book numbers of codes like `SGB V`, `SGB XII`.
        let mut probe = *self;
        if probe.skip_ws() {
            let r = probe.rest();
            let roman = r
                .bytes()
                .take_while(|b| matches!(b, b'I' | b'V' | b'X'))
                .count();
            if roman > 0 && !r[roman..].starts_with(|c: char| c.is_alphanumeric()) {
                *self = probe;
                self.pos += roman;
            }
        }
        true
    }
}

const QUALIFIERS: &[&str] = &[
    "Abs.",
    "Absatz",
    "S.",
    "Satz",
    "Nr.",
    "Nummer",
    "lit.",
    "Buchst.",
    "Alt.",
    "Var.",
    "Hs.",
    "Halbs.",
    "Halbsatz",
    "UAbs.",
    "Unterabs.",
];

/// After the section number: more numbers (`§§ 433, 434`), qualifiers (`Abs. 1 S. 2`),
/// `ff.`/`f.` and the law code. Returns the end of the citation.
fn citation_tail(mut cur: Cursor<'_>, list: bool) -> usize {
    let mut end = cur.pos;
    if list {
        loop {
            let mut probe = cur;
            probe.skip_ws();
            let joined = probe.eat(",")
                || probe.eat("-")
                || probe.eat("–")
                || probe.eat_word("und")
                || probe.eat_word("bis");
            probe.skip_ws();
            if joined && probe.eat_number() {
                cur = probe;
                end = cur.pos;
            } else {
                break;
            }
        }
    }
    loop {
        let mut probe = cur;
        probe.skip_ws();
        let qualified = QUALIFIERS.iter().any(|q| probe.eat_word(q));
        if !qualified {
            break;
        }
        probe.skip_ws();
        let value = probe.eat_number()
            || (probe.rest().starts_with(|c: char| c.is_ascii_lowercase())
                && !probe.rest()[1..].starts_with(|c: char| c.is_alphanumeric())
                && {
                    probe.pos += 1;
                    true
                });
        if !value {
            break;
        }
        cur = probe;
        end = cur.pos;
    }
    let mut probe = cur;
    probe.skip_ws();
    if probe.eat_word("ff.") || probe.eat_word("f.") {
        cur = probe;
        end = cur.pos;
    }
    let mut probe = cur;
    if probe.skip_ws() && probe.eat_law() {
        end = probe.pos;
    }
    end
}

const COURTS: &[&str] = &["BVerfG", "BVerwG", "BGH", "BAG", "BFH", "BSG"];

/// A court decision like `BGH VI ZR 396/18`.
fn court_decision(mut cur: Cursor<'_>) -> Option<usize> {
    if !COURTS.iter().any(|c| cur.eat_word(c)) || !cur.skip_ws() {
        return None;
    }
    let r = cur.rest();
    let roman = r
        .bytes()
        .take_while(|b| matches!(b, b'I' | b'V' | b'X'))
        .count();
    if roman == 0 {
        return None;
    }
    cur.pos += roman;
    if !cur.skip_ws() {
        return None;
    }
    let r = cur.rest();
    let reg = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    if reg == 0 || !r.as_bytes()[0].is_ascii_uppercase() {
        return None;
    }
    cur.pos += reg;
    if !cur.skip_ws() {
        return None;
    }
    let r = cur.rest();
    let num = r.bytes().take_while(u8::is_ascii_digit).count();
    if num == 0 || !r[num..].starts_with('/') {
        return None;
    }
    let year = r[num + 1..].bytes().take_while(u8::is_ascii_digit).count();
    if year == 0 {
        return None;
    }
    Some(cur.pos + num + 1 + year)
}

/// Extracts legal citations in order of appearance, whitespace-normalised and deduplicated:
/// `§ 823 Abs. 1 BGB`, `§§ 433 ff. BGB`, `Art. 1 Abs. 1 GG`, `BGH VI ZR 396/18`.
pub fn extract_citations(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut pos = 0usize;
    while pos < text.len() {
        let rest = &text[pos..];
        // Jump to the next possible start: `§`, `A` (Art.) or `B` (courts).
        let Some(offset) = rest.find(['§', 'A', 'B']) else {
            break;
        };
        let start = pos + offset;
        let cur = Cursor { text, pos: start };
        let boundary_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let end = if !boundary_ok {
            None
        } else if text[start..].starts_with('§') {
            let mut c = cur;
            let list = c.eat("§§");
            if !list {
                c.eat("§");
            }
            c.skip_ws();
            c.eat_number().then(|| citation_tail(c, list))
        } else if text[start..].starts_with('A') {
            let mut c = cur;
            let list = c.eat_word("Artt.");
            if list || c.eat_word("Art.") || c.eat_word("Artikel") {
                c.skip_ws();
                c.eat_number().then(|| citation_tail(c, list))
            } else {
                None
            }
        } else {
            court_decision(cur)
        };
        match end {
            Some(end) => {
                let cite = normalise_ws(&text[start..end]);
                if !found.contains(&cite) {
                    found.push(cite);
                }
                pos = end;
            }
            None => pos = start + text[start..].chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

fn normalise_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Similarity
// ---------------------------------------------------------------------------------------------

/// German function words that carry no claim; they would make any two German texts look alike.
#[rustfmt::skip]
fn is_stopword(w: &str) -> bool {
    matches!(
        w,
        "nach" | "oder" | "eine" | "einer" | "eines" | "einem" | "einen" | "dass" | "wird"
            | "werden" | "wurde" | "wurden" | "sind" | "sein" | "seine" | "seiner" | "seinen"
            | "seinem" | "durch" | "nicht" | "auch" | "wenn" | "dann" | "sich" | "aber" | "noch"
            | "über" | "unter" | "dieser" | "diese" | "dieses" | "diesem" | "diesen" | "kann"
            | "muss" | "soll" | "haben" | "gegen" | "beim" | "sowie" | "also" | "doch" | "jedoch"
            | "hier" | "dort" | "ihre" | "ihrer" | "ihren" | "ihrem" | "welche" | "welcher"
            | "welches" | "zwar" | "denn" | "weil" | "damit" | "sofern" | "soweit"
            | "insbesondere" | "abs" | "absatz" | "satz" | "artikel"
    )
}

/// Reusable buffers so scoring allocates nothing per request once warm.
#[derive(Default)]
pub struct Scratch {
    word: String,
    source_sets: Vec<Vec<u64>>,
    sentence_set: Vec<u64>,
}

/// Sorted, deduplicated character trigrams of the content words of `text`, into `out`.
/// Words shorter than 3 characters, numbers, law codes (two or more capitals, e.g. `BGB`)
/// and stopwords are skipped. Each word is padded with spaces so word order does not matter.
fn content_trigrams(text: &str, word: &mut String, out: &mut Vec<u64>) {
    out.clear();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(start) = rest.find(char::is_alphanumeric) else {
            break;
        };
        rest = &rest[start..];
        let len = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let raw = &rest[..len];
        rest = &rest[len..];
        if raw.len() < 3 || raw.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if raw.chars().filter(|c| c.is_uppercase()).count() >= 2 {
            continue;
        }
        word.clear();
        if raw.is_ascii() {
            word.push_str(raw);
            word.make_ascii_lowercase();
        } else {
            word.extend(raw.chars().flat_map(char::to_lowercase));
        }
        if word.chars().nth(2).is_none() || is_stopword(word) {
            continue;
        }
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            continue;
        };
        let (mut a, mut b) = (' ', first);
        for c in chars.chain(std::iter::once(' ')) {
            out.push(trigram_key(a, b, c));
            a = b;
            b = c;
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Three code points packed losslessly (21 bits each).
fn trigram_key(a: char, b: char, c: char) -> u64 {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

/// Share of `sentence`'s trigrams found in `source` (both sorted and deduplicated).
fn containment(sentence: &[u64], source: &[u64]) -> f64 {
    if sentence.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut hits) = (0, 0, 0usize);
    while i < sentence.len() && j < source.len() {
        match sentence[i].cmp(&source[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                hits += 1;
                i += 1;
                j += 1;
            }
        }
    }
    hits as f64 / sentence.len() as f64
}

// ---------------------------------------------------------------------------------------------
// Confidence (mirrors the real ConfidenceEngine)
// ---------------------------------------------------------------------------------------------

/// A sentence counts as verified at this best similarity (real `sentence_threshold`).
pub const SENTENCE_THRESHOLD: f64 = 0.75;
/// The answer counts as verified at this confidence (real `overall_threshold`).
pub const OVERALL_THRESHOLD: f64 = 0.80;
/// Below this confidence the label is "rejected" (real `review_min`).
pub const REVIEW_THRESHOLD: f64 = 0.60;
/// Retrieval score assumed for a source without one (as the real server does).
pub const DEFAULT_SOURCE_SCORE: f64 = 0.5;

/// The real API's trust labels.
pub const LABEL_VERIFIED: &str = "✅ Verified";
/// Confidence between the review and overall thresholds.
pub const LABEL_REVIEW: &str = "⚠️ Review";
/// Confidence below the review threshold.
pub const LABEL_REJECTED: &str = "🚫 Rejected";

/// Index of a label in `by_label` order (verified, review, rejected).
pub fn label_index(confidence: f64) -> usize {
    if confidence >= OVERALL_THRESHOLD {
        0
    } else if confidence >= REVIEW_THRESHOLD {
        1
    } else {
        2
    }
}

/// The label text for a confidence.
pub fn trust_label(confidence: f64) -> &'static str {
    [LABEL_VERIFIED, LABEL_REVIEW, LABEL_REJECTED][label_index(confidence)]
}

/// The four confidence components.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Components {
    /// Mean best similarity, minus penalties for spread and unsupported sentences.
    pub semantic_similarity: f64,
    /// Mean of the top three source retrieval scores.
    pub retrieval_quality: f64,
    /// 0.3 without citations, 0.7 with one, 0.85 with two, +0.05 per further one.
    pub citation_presence: f64,
    /// Verified sentences / sentences.
    pub coverage: f64,
}

/// Everything `/verify` computes about an answer.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Sentences after splitting (short fragments dropped).
    pub total_sentences: usize,
    /// Sentences whose best similarity reaches [`SENTENCE_THRESHOLD`].
    pub verified_sentences: usize,
    /// Citations found in the answer.
    pub citations: Vec<String>,
    /// First 16 hex digits of SHA-256 of each source text (as the real fingerprint tracker).
    pub fingerprints: Vec<String>,
    /// The components.
    pub components: Components,
    /// Weighted confidence in 0..=1.
    pub score: f64,
}

impl Analysis {
    /// `verified_sentences / total_sentences` (0 without sentences).
    pub fn verification_rate(&self) -> f64 {
        self.components.coverage
    }

    /// Whether the confidence reaches the overall threshold.
    pub fn verified(&self) -> bool {
        self.score >= OVERALL_THRESHOLD
    }
}

fn semantic_score(scores: &[f64]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let mut score = mean;
    if scores.len() > 1 {
        // statistics.variance: the sample variance.
        let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / (n - 1.0);
        score -= (var * 0.5).min(0.15);
    }
    let low = scores.iter().filter(|&&s| s < SENTENCE_THRESHOLD).count() as f64;
    (score - low / n * 0.20).max(0.0)
}

fn retrieval_score(sources: &[Source<'_>]) -> f64 {
    let mut top = [f64::NEG_INFINITY; 3];
    for s in sources {
        let v = s.score.unwrap_or(DEFAULT_SOURCE_SCORE);
        if v > top[2] {
            top[2] = v;
            top.sort_unstable_by(|a, b| b.total_cmp(a));
        }
    }
    let kept: Vec<f64> = top.into_iter().filter(|v| v.is_finite()).collect();
    if kept.is_empty() {
        DEFAULT_SOURCE_SCORE
    } else {
        kept.iter().sum::<f64>() / kept.len() as f64
    }
}

fn citation_score(count: usize) -> f64 {
    match count {
        0 => 0.3,
        1 => 0.7,
        2 => 0.85,
        n => (0.85 + (n - 2) as f64 * 0.05).min(1.0),
    }
}

/// Does the real work for one request: split, cite, match every sentence against every
/// source, and combine the signals with the real engine's weights (0.60/0.25/0.10/0.05).
pub fn analyse(req: &VerifyRequest<'_>, scratch: &mut Scratch) -> Analysis {
    let Scratch {
        word,
        source_sets,
        sentence_set,
    } = scratch;
    if source_sets.len() < req.sources.len() {
        source_sets.resize_with(req.sources.len(), Vec::new);
    }
    for (set, src) in source_sets.iter_mut().zip(&req.sources) {
        content_trigrams(src.text, word, set);
    }
    let source_sets = &source_sets[..req.sources.len()];

    let mut sentences = Vec::new();
    split_sentences(req.answer, &mut sentences);
    let mut best_scores = Vec::with_capacity(sentences.len());
    for sentence in &sentences {
        content_trigrams(sentence, word, sentence_set);
        let best = source_sets
            .iter()
            .map(|src| containment(sentence_set, src))
            .fold(0.0f64, f64::max);
        best_scores.push(best);
    }
    let total = sentences.len();
    let verified = best_scores
        .iter()
        .filter(|&&s| s >= SENTENCE_THRESHOLD)
        .count();
    let citations = extract_citations(req.answer);
    let components = Components {
        semantic_similarity: semantic_score(&best_scores),
        retrieval_quality: retrieval_score(&req.sources),
        citation_presence: citation_score(citations.len()),
        coverage: if total == 0 {
            0.0
        } else {
            verified as f64 / total as f64
        },
    };
    let score = (components.semantic_similarity * 0.60
        + components.retrieval_quality * 0.25
        + components.citation_presence * 0.10
        + components.coverage * 0.05)
        .clamp(0.0, 1.0);
    let fingerprints = req.sources.iter().map(|s| fingerprint(s.text)).collect();
    Analysis {
        total_sentences: total,
        verified_sentences: verified,
        citations,
        fingerprints,
        components,
        score,
    }
}

/// First 16 hex digits of the SHA-256 of a source text.
pub fn fingerprint(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(16);
    for b in &digest[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        split_sentences(text, &mut out);
        out
    }

    #[test]
    fn abbreviations_do_not_split() {
        let s = sentences(
            "Nach § 823 Abs. 1 BGB haftet, wer z.B. fahrlässig handelt. Die Frist beginnt am 1. Januar. \
             Vgl. S. 3 Nr. 2 i.V.m. § 241 Abs. 2 BGB. Sie gilt nach § 195. Das ist klar!",
        );
        assert_eq!(s.len(), 5, "{s:?}");
        assert_eq!(s[3], "Sie gilt nach § 195.");
    }

    #[test]
    fn json_errors_read_like_pythons() {
        let cases = [
            (
                "{\"answer\": 1,",
                13,
                "Expecting property name enclosed in double quotes",
            ),
            ("{\"a\" 1}", 5, "Expecting ':' delimiter"),
            ("{\"a\": 1} x", 9, "Extra data"),
            ("[1, 2", 5, "Expecting ',' delimiter"),
            ("{\"a\": \"x", 6, "Unterminated string starting at"),
            ("{\"a\": tru}", 6, "Expecting value"),
            ("nul", 0, "Expecting value"),
            ("{\"ä\": \"ü\" ]", 10, "Expecting ',' delimiter"),
        ];
        for (doc, pos, msg) in cases {
            let Err(BodyRejection::Invalid(errors)) = decode_body(None, doc.as_bytes()) else {
                panic!("{doc} decoded");
            };
            assert_eq!(errors[0].loc, [Loc::Key("body"), Loc::Index(pos)], "{doc}");
            assert_eq!(errors[0].ctx, Some(json!({ "error": msg })), "{doc}");
        }
    }

    #[test]
    fn nan_scores_fail_le_like_pydantic() {
        let body = json!({"answer": "a", "sources": [{"text": "b", "score": "nan"}]});
        let errors = validate(&body).expect_err("invalid");
        assert_eq!(errors[0].kind, "less_than_equal");
    }

    #[test]
    fn citations_are_whole() {
        let c = extract_citations(
            "Nach § 823 Abs. 1 BGB und §§ 433 ff. BGB sowie Art. 1 Abs. 1 GG, § 195 BGB, \
             Art. 20 GG (BGH VI ZR 396/18) und §823 BGB.",
        );
        assert_eq!(
            c,
            [
                "§ 823 Abs. 1 BGB",
                "§§ 433 ff. BGB",
                "Art. 1 Abs. 1 GG",
                "§ 195 BGB",
                "Art. 20 GG",
                "BGH VI ZR 396/18",
                "§823 BGB"
            ]
        );
    }

    #[test]
    fn supported_sentences_score_high_and_made_up_ones_low() {
        let src = "Die regelmäßige Verjährungsfrist beträgt drei Jahre.";
        let mut w = String::new();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        content_trigrams(src, &mut w, &mut a);
        content_trigrams(
            "Die regelmäßige Verjährungsfrist beträgt nach § 195 BGB drei Jahre.",
            &mut w,
            &mut b,
        );
        content_trigrams(
            "Der Mond besteht vollständig aus grünem Käse.",
            &mut w,
            &mut c,
        );
        assert!(containment(&b, &a) > 0.9);
        assert!(containment(&c, &a) < 0.4);
    }
}
