//! The lexer: quote and escape processing, `$` expansion and word splitting.

use std::collections::BTreeSet;

use crate::charclass::{is_decimal_digit, is_letter_or_digit};
use crate::env::EnvGetter;
use crate::error::{ExpandError, ExpandErrorKind, MAX_NESTING};
use crate::pattern::{self, BYTE_ORDER_MARK};

/// Expands variables in Dockerfile words the way BuildKit does.
///
/// A `Lexer` only holds settings: it is cheap to copy, and one value can be
/// used from many threads. The options mirror the switches of BuildKit's lexer
/// that individual Dockerfile instructions turn on; all are off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
}

impl Default for Lexer {
    /// A lexer with the default `\` escape character.
    fn default() -> Self {
        Self::new('\\')
    }
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub result: String,
    /// Names of referenced variables that were set (possibly to "").
    pub matched: BTreeSet<String>,
    /// Names of referenced variables that were not set.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// Creates a lexer that uses `escape` as its escape character: `\` by
    /// default, or the one chosen by an `# escape=` parser directive
    /// (typically `` ` `` in Windows Dockerfiles).
    pub const fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// The escape character.
    pub const fn escape(&self) -> char {
        self.escape
    }

    /// Keeps quote characters in the output. Quotes still group text and
    /// still stop expansion inside single quotes.
    #[must_use]
    pub const fn with_raw_quotes(mut self, enabled: bool) -> Self {
        self.raw_quotes = enabled;
        self
    }

    /// Keeps escape characters (outside quotes, and the `\` before an escaped
    /// character inside double quotes) in the output, while they still
    /// protect the character they escape. Does not apply inside the operand of
    /// `${var:-word}`, `${var:+word}` and `${var:?word}`, which BuildKit always
    /// unescapes.
    #[must_use]
    pub const fn with_raw_escapes(mut self, enabled: bool) -> Self {
        self.raw_escapes = enabled;
        self
    }

    /// Leaves references to unset variables as written (`$NAME`, `${NAME}`,
    /// `${NAME:-word}`, ...) instead of expanding them, so that they can be
    /// expanded later. Operators on unset variables are then not evaluated
    /// either, so even `${NAME:=x}` or `${NAME?}` pass through unchanged.
    #[must_use]
    pub const fn with_skip_unset_env(mut self, enabled: bool) -> Self {
        self.skip_unset_env = enabled;
        self
    }

    /// Treats `'` and `"` as ordinary characters.
    #[must_use]
    pub const fn with_skip_process_quotes(mut self, enabled: bool) -> Self {
        self.skip_process_quotes = enabled;
        self
    }

    /// Expands `word` into a single string: quotes and escapes are removed
    /// and variables replaced, but whitespace is kept as it is.
    pub fn process_word(&self, word: &str, env: &dyn EnvGetter) -> Result<String, ExpandError> {
        self.run(word, env).map(|(expansion, _)| expansion.result)
    }

    /// Like [`process_word`](Self::process_word), and also reports which
    /// variables the word referred to, for "undefined variable" checks.
    ///
    /// Every name looked up counts, including names in the operand of an
    /// operator that turned out not to be needed, such as `$B` in `${A:-$B}`.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<Expansion, ExpandError> {
        self.run(word, env).map(|(expansion, _)| expansion)
    }

    /// Expands `word` and splits the result into words at unquoted,
    /// unescaped whitespace, including whitespace that comes from variable
    /// values. Empty words are dropped, even quoted ones (`""`).
    ///
    /// A `<<` and the blanks after it stay in the same word as what follows,
    /// so that a heredoc marker like `<< EOF` remains one word.
    ///
    /// Like BuildKit, an operator expansion such as `${A:-x}` discards the
    /// part of the current word that came before it outside quotes: `a${A:-x}b`
    /// yields the single word `xb`. (In BuildKit every nesting level shares
    /// one buffer for the word in progress, and each level starts by
    /// clearing it.)
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, words)| words)
    }

    /// Like [`process_words`](Self::process_words), and also reports which variables the
    /// word referred to, as [`process_word_with_matches`](Self::process_word_with_matches)
    /// does (the expansion's `result` is the unsplit word).
    pub fn process_words_with_matches(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<(Expansion, Vec<String>), ExpandError> {
        self.run(word, env)
    }

    fn run(
        &self,
        word: &str,
        env: &dyn EnvGetter,
    ) -> Result<(Expansion, Vec<String>), ExpandError> {
        let chars: Vec<char> = word.chars().collect();
        let mut run = Run {
            lexer: self,
            env,
            pos: usize::from(chars.first() == Some(&BYTE_ORDER_MARK)),
            chars,
            raw_escapes: self.raw_escapes,
            nesting: 0,
            word_in_progress: String::new(),
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let (result, words) = run
            .process_until(None, self.raw_escapes)
            .map_err(|kind| ExpandError::new(word, kind))?;
        let expansion = Expansion {
            result,
            matched: run.matched,
            unmatched: run.unmatched,
        };
        Ok((expansion, words))
    }
}

/// The character that ends a nested part of a `${...}` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Brace,
    Slash,
}

impl Stop {
    fn char(self) -> char {
        match self {
            Stop::Brace => '}',
            Stop::Slash => '/',
        }
    }

    fn missing(self) -> ExpandErrorKind {
        match self {
            Stop::Brace => ExpandErrorKind::MissingClosingBrace,
            Stop::Slash => ExpandErrorKind::MissingSlash,
        }
    }
}

/// The state of expanding one word.
struct Run<'a> {
    lexer: &'a Lexer,
    env: &'a dyn EnvGetter,
    chars: Vec<char>,
    pos: usize,
    /// Whether escapes are kept; nested parts of `${...}` override the
    /// lexer's setting while they are read.
    raw_escapes: bool,
    /// How many nested parts of `${...}` expressions are being read.
    nesting: usize,
    /// The text of the word being split off. Shared by all nesting levels,
    /// as in BuildKit, which makes `process_words` drop text (see there).
    word_in_progress: String,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Run<'a> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes input up to and including `stop` (or to the end if `None`),
    /// returning the expanded text and its words.
    fn process_until(
        &mut self,
        stop: Option<Stop>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandErrorKind> {
        let outer_raw_escapes = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let processed = self.scan(stop);
        self.raw_escapes = outer_raw_escapes;
        processed
    }

    fn scan(&mut self, stop: Option<Stop>) -> Result<(String, Vec<String>), ExpandErrorKind> {
        let mut result = String::new();
        let mut words = Vec::new();
        self.word_in_progress.clear();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if stop.is_some_and(|stop| stop.char() == c) {
                self.bump();
                return Ok((result, self.finish_words(words)));
            }
            let special = match c {
                '$' => {
                    let value = self.dollar()?;
                    // Unquoted expansions are split into words.
                    for c in value.chars() {
                        self.add_unquoted(&mut words, c);
                    }
                    result.push_str(&value);
                    continue;
                }
                '<' => self.heredoc_marker(),
                '\'' if quotes => self.single_quoted()?,
                '"' if quotes => self.double_quoted()?,
                _ => {
                    self.bump();
                    if c != self.lexer.escape {
                        self.add_unquoted(&mut words, c);
                        result.push(c);
                        continue;
                    }
                    if self.raw_escapes {
                        self.word_in_progress.push(c);
                        result.push(c);
                    }
                    // An escape at the very end escapes nothing and vanishes.
                    let Some(escaped) = self.bump() else { break };
                    self.word_in_progress.push(escaped);
                    result.push(escaped);
                    continue;
                }
            };
            self.word_in_progress.push_str(&special);
            result.push_str(&special);
        }
        match stop {
            Some(stop) => Err(stop.missing()),
            None => Ok((result, self.finish_words(words))),
        }
    }

    /// Adds a character that is neither quoted nor escaped to the words:
    /// whitespace ends the word in progress.
    fn add_unquoted(&mut self, words: &mut Vec<String>, c: char) {
        if !c.is_whitespace() {
            self.word_in_progress.push(c);
        } else if !self.word_in_progress.is_empty() {
            words.push(std::mem::take(&mut self.word_in_progress));
        }
    }

    fn finish_words(&mut self, mut words: Vec<String>) -> Vec<String> {
        if !self.word_in_progress.is_empty() {
            words.push(std::mem::take(&mut self.word_in_progress));
        }
        words
    }

    /// Reads a nested part of a `${...}` expression up to `stop`.
    fn delimited(&mut self, stop: Stop, raw_escapes: bool) -> Result<String, ExpandErrorKind> {
        if self.nesting == MAX_NESTING {
            return Err(ExpandErrorKind::NestingTooDeep);
        }
        self.nesting += 1;
        let processed = self.process_until(Some(stop), raw_escapes);
        self.nesting -= 1;
        // BuildKit reports any failure that ran into the end of the input as
        // the missing delimiter, even when the cause was something else.
        processed.map(|(text, _)| text).map_err(|err| {
            if self.peek().is_none() {
                stop.missing()
            } else {
                err
            }
        })
    }

    /// `<` is ordinary, but `<<` and the blanks after it are kept together so
    /// that word splitting leaves a heredoc marker like `<< EOF` in one word.
    fn heredoc_marker(&mut self) -> String {
        self.bump();
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.bump();
        let mut marker = "<<".to_owned();
        while let Some(blank) = self.peek().filter(|c| matches!(c, ' ' | '\t' | '\r')) {
            self.bump();
            marker.push(blank);
        }
        marker
    }

    /// Everything up to the next `'` is literal; there are no escapes.
    fn single_quoted(&mut self) -> Result<String, ExpandErrorKind> {
        let raw = self.lexer.raw_quotes;
        let mut text = String::new();
        self.bump();
        if raw {
            text.push('\'');
        }
        loop {
            match self.bump() {
                None => return Err(ExpandErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if raw {
                        text.push('\'');
                    }
                    return Ok(text);
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// Variables are expanded, and the escape character only escapes `"`,
    /// `$` and itself; before anything else it is literal.
    fn double_quoted(&mut self) -> Result<String, ExpandErrorKind> {
        let raw = self.lexer.raw_quotes;
        let escape = self.lexer.escape;
        let mut text = String::new();
        self.bump();
        if raw {
            text.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(ExpandErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.bump();
                    if raw {
                        text.push('"');
                    }
                    return Ok(text);
                }
                Some('$') => text.push_str(&self.dollar()?),
                Some(c) => {
                    self.bump();
                    if c != escape {
                        text.push(c);
                        continue;
                    }
                    // With raw escapes BuildKit writes the escape once for
                    // keeping it and, if it escapes nothing, once more as a
                    // literal: `"\a"` gives `\\a`.
                    if self.raw_escapes {
                        text.push(c);
                    }
                    match self.peek() {
                        // Left for the loop to report the missing quote.
                        None => {}
                        Some(next) if next == '"' || next == '$' || next == escape => {
                            self.bump();
                            text.push(next);
                        }
                        Some(_) => text.push(c),
                    }
                }
            }
        }
    }

    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let env = self.env;
        let value = env.get(name);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !seen.contains(name) {
            seen.insert(name.to_owned());
        }
        value
    }

    /// Reads a variable name: a run of decimal digits (positional
    /// parameter), one special parameter character, or letters, digits and
    /// `_`. Returns "" if there is no name here.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if is_decimal_digit(c) => {
                while let Some(digit) = self.peek().filter(|&c| is_decimal_digit(c)) {
                    self.bump();
                    name.push(digit);
                }
            }
            Some(c) if is_special_parameter(c) => {
                self.bump();
                name.push(c);
            }
            _ => {
                while let Some(c) = self.peek().filter(|&c| c == '_' || is_letter_or_digit(c)) {
                    self.bump();
                    name.push(c);
                }
            }
        }
        name
    }

    /// Expands the `$` expression at the current position.
    fn dollar(&mut self) -> Result<String, ExpandErrorKind> {
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }

        self.bump();
        match self.peek() {
            None => return Err(ExpandErrorKind::MissingClosingBrace),
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let operator = self.bump();
        // BuildKit quotes the operator in errors as read, and the end of
        // input reads as U+FFFD.
        let mut modifier = String::from(operator.unwrap_or(char::REPLACEMENT_CHARACTER));
        match operator {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let operator = self.bump();
                modifier.push(operator.unwrap_or(char::REPLACEMENT_CHARACTER));
                self.modifier(&name, operator, true, modifier)
            }
            Some('+' | '-' | '?' | '#' | '%') => self.modifier(&name, operator, false, modifier),
            Some('/') => self.substitution(&name),
            _ => Err(ExpandErrorKind::UnsupportedModifier(modifier)),
        }
    }

    /// `${name<modifier>word}` for the `-`, `+`, `?`, `#` and `%` families.
    /// With `null_is_unset` (the `:` forms) an empty value counts as unset.
    fn modifier(
        &mut self,
        name: &str,
        operator: Option<char>,
        null_is_unset: bool,
        modifier: String,
    ) -> Result<String, ExpandErrorKind> {
        let trims = matches!(operator, Some('#' | '%'));
        if null_is_unset && trims {
            return Err(ExpandErrorKind::UnsupportedModifier(modifier));
        }
        // Patterns keep their escapes: the pattern matcher interprets them.
        let word = self.delimited(Stop::Brace, trims)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset = value.is_none_or(|value| null_is_unset && value.is_empty());
        match operator {
            Some('-') => Ok(match value {
                Some(value) if !unset => value.to_owned(),
                _ => word,
            }),
            Some('+') => Ok(if unset { String::new() } else { word }),
            Some('?') => match value {
                Some(value) if !unset => Ok(value.to_owned()),
                _ => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    Err(ExpandErrorKind::Required {
                        name: name.to_owned(),
                        message,
                    })
                }
            },
            Some(op @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                // A doubled operator (`##`, `%%`) asks for the longest match.
                let (longest, pattern) = match word.strip_prefix(op) {
                    Some(pattern) => (true, pattern),
                    None => (false, word.as_str()),
                };
                if op == '%' {
                    pattern::trim_suffix(pattern, value, longest)
                } else {
                    pattern::trim_prefix(pattern, value, longest)
                }
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(modifier)),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn substitution(&mut self, name: &str) -> Result<String, ExpandErrorKind> {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let pattern = self.delimited(Stop::Slash, true)?;
        let replacement = self.delimited(Stop::Brace, true)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            // BuildKit writes a single `/` back even for `//`.
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        pattern::replace(value.unwrap_or_default(), &pattern, &replacement, all)
    }
}

/// The special parameters of POSIX shells (`$@`, `$*`, `$#`, ...). Dockerfiles
/// never set them, but they are still read as one-character names.
fn is_special_parameter(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}
