//! Just enough of POSIX `sh` to see what a `RUN` script runs.
//!
//! Lint rules ask questions such as "does this script call `apt-get install` without
//! `--no-install-recommends`?": they need the simple commands of the script with quotes removed,
//! and whether each one writes into a pipe. This reader splits on the control operators (`&&`,
//! `||`, `;`, `|`, `&`, newlines, subshell parentheses), drops redirections and heredoc bodies,
//! strips wrappers (`sudo`, `env`, `NAME=value` prefixes) and looks inside `sh -c '…'`. It never
//! fails: whatever it does not understand stays an ordinary word.

/// How deep `sh -c 'sh -c …'` is followed (hostile input must not recurse without bound).
const MAX_NESTING: usize = 3;

/// Shells whose `-c` argument is itself a script worth reading.
pub(crate) const SHELLS: [&str; 6] = ["sh", "bash", "ash", "dash", "zsh", "ksh"];

/// Words that start or end compound commands; they are not programs.
const RESERVED: [&str; 15] = [
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "case", "esac", "!", "{",
    "}", "time",
];

/// The simple commands of a script, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Script {
    commands: Vec<SimpleCommand>,
}

/// One command with its arguments: `CGO_ENABLED=0 go build -o /app .`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SimpleCommand {
    /// `NAME=value` words before the command, and those handed to `env`.
    pub assignments: Vec<(String, String)>,
    /// The program and its arguments, quotes removed (wrappers such as `sudo` dropped).
    pub words: Vec<String>,
    /// Whether its output goes into a pipe (`a | b`: true for `a`).
    pub pipes_out: bool,
    /// Whether it runs through `sudo` (dropped from `words`).
    pub sudo: bool,
}

impl Script {
    /// Reads a script. Never fails.
    pub(crate) fn parse(text: &str) -> Script {
        Script::parse_nested(text, 0)
    }

    /// A script that is exactly one command, as exec-form `RUN ["apt-get", "install", …]` is.
    pub(crate) fn from_argv(argv: &[String]) -> Script {
        let mut commands = Vec::new();
        push_command(argv.to_vec(), false, 0, &mut commands);
        Script { commands }
    }

    fn parse_nested(text: &str, depth: usize) -> Script {
        let mut commands = Vec::new();
        let mut words: Vec<String> = Vec::new();
        // `case x in a | b) …;; esac`: the `|` between patterns is not a pipe, and the patterns
        // are not commands.
        let mut open_cases = 0usize;
        let mut in_patterns = false;
        for token in Tokenizer::new(text).run() {
            match token {
                Token::Word(word) if word == "esac" && (in_patterns || words.is_empty()) => {
                    open_cases = open_cases.saturating_sub(1);
                    in_patterns = false;
                }
                Token::Word(_) | Token::Pipe | Token::Break if in_patterns => {}
                Token::Close if in_patterns => in_patterns = false,
                Token::Word(word) if word == "in" && words.first().is_some_and(|w| w == "case") => {
                    words.clear();
                    open_cases += 1;
                    in_patterns = true;
                }
                Token::Word(word) => words.push(word),
                Token::Pipe => push_command(std::mem::take(&mut words), true, depth, &mut commands),
                Token::Break | Token::Close | Token::CaseItemEnd => {
                    push_command(std::mem::take(&mut words), false, depth, &mut commands);
                    in_patterns = token == Token::CaseItemEnd && open_cases > 0;
                }
            }
        }
        push_command(words, false, depth, &mut commands);
        Script { commands }
    }

    /// The simple commands, in order.
    pub(crate) fn commands(&self) -> &[SimpleCommand] {
        &self.commands
    }

    /// The pipes before `set -o pipefail` is in force, as (writer, reader) pairs: in each the
    /// pipeline's status is only the reader's, so a failure of the writer goes unnoticed.
    pub(crate) fn unguarded_pipes(&self) -> Vec<(&SimpleCommand, &SimpleCommand)> {
        let end = self
            .commands
            .iter()
            .position(SimpleCommand::sets_pipefail)
            .unwrap_or(self.commands.len());
        self.commands[..end]
            .windows(2)
            .filter(|pair| pair[0].pipes_out)
            .map(|pair| (&pair[0], &pair[1]))
            .collect()
    }

    /// Whether any word of any command satisfies `test` (for paths like `/var/lib/apt/lists`).
    pub(crate) fn any_word(&self, test: impl Fn(&str) -> bool) -> bool {
        self.commands.iter().flat_map(|c| &c.words).any(|w| test(w))
    }
}

impl SimpleCommand {
    /// The program's file name (`/usr/bin/apt-get` → `apt-get`), empty for none.
    pub(crate) fn program(&self) -> &str {
        self.words
            .first()
            .map_or("", |w| w.rsplit('/').next().unwrap_or(w))
    }

    /// The arguments after the program.
    pub(crate) fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// Whether an argument is one of `names`, or `name=…` for one of them.
    pub(crate) fn has_option(&self, names: &[&str]) -> bool {
        has_option(self.args(), names)
    }

    /// The value this command gives `name`: inline (`NAME=v cmd`) or via `env`.
    pub(crate) fn assignment(&self, name: &str) -> Option<&str> {
        self.assignments
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `set -o pipefail`, `set -euo pipefail` and the like.
    fn sets_pipefail(&self) -> bool {
        self.program() == "set"
            && self.args().windows(2).any(|pair| {
                let flag = pair[0].as_str();
                flag.starts_with('-')
                    && !flag.starts_with("--")
                    && flag.contains('o')
                    && pair[1] == "pipefail"
            })
    }

    /// The script of `sh -c 'script'` (`bash -euxo pipefail -c …` too), and whether the
    /// shell's own options turn `pipefail` on.
    fn shell_script(&self) -> Option<(&str, bool)> {
        if !SHELLS.contains(&self.program()) {
            return None;
        }
        let args = self.args();
        let mut pipefail = false;
        let mut index = 0;
        while let Some(arg) = args.get(index) {
            if !(arg.starts_with('-') || arg.starts_with('+')) || arg == "--" {
                return None;
            }
            let letters = &arg[1..];
            if letters.contains('o') {
                pipefail |= args.get(index + 1).is_some_and(|v| v == "pipefail");
                if !letters.contains('c') {
                    index += 2;
                    continue;
                }
            }
            if letters.contains('c') {
                return args.get(index + 1).map(|s| (s.as_str(), pipefail));
            }
            index += 1;
        }
        None
    }
}

/// Whether `args` contain one of `names` exactly, or as `name=value`.
pub(crate) fn has_option(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|arg| {
        names.iter().any(|name| {
            arg == name
                || (name.starts_with("--")
                    && arg.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
        })
    })
}

/// Turns the words between two control operators into a command and appends it; a `sh -c`
/// command is replaced by the commands of its script.
fn push_command(words: Vec<String>, pipes_out: bool, depth: usize, out: &mut Vec<SimpleCommand>) {
    let Some(mut command) = SimpleCommand::from_words(words) else {
        return;
    };
    command.pipes_out = pipes_out;
    if depth < MAX_NESTING
        && let Some((script, pipefail)) = command.shell_script()
    {
        if pipefail {
            out.push(SimpleCommand {
                words: vec!["set".into(), "-o".into(), "pipefail".into()],
                ..SimpleCommand::default()
            });
        }
        let mut nested = Script::parse_nested(script, depth + 1).commands;
        if let Some(last) = nested.last_mut() {
            last.pipes_out |= pipes_out;
        }
        out.append(&mut nested);
        return;
    }
    out.push(command);
}

impl SimpleCommand {
    fn from_words(words: Vec<String>) -> Option<SimpleCommand> {
        let mut index = 0;
        while words
            .get(index)
            .is_some_and(|w| RESERVED.contains(&w.as_str()))
        {
            index += 1;
        }
        let mut assignments = Vec::new();
        let mut sudo = false;
        while let Some(pair) = words.get(index).and_then(|w| split_assignment(w)) {
            assignments.push(pair);
            index += 1;
        }
        // Wrappers run the rest of the line as the real command.
        while let Some(word) = words.get(index) {
            let name = word.rsplit('/').next().unwrap_or(word);
            index += 1;
            match name {
                "sudo" => {
                    sudo = true;
                    while let Some(option) = words.get(index).filter(|w| w.starts_with('-')) {
                        let takes_value = matches!(option.as_str(), "-u" | "-g" | "-C" | "-D");
                        index += 1 + usize::from(takes_value);
                    }
                }
                "env" => {
                    while let Some(arg) = words.get(index) {
                        if let Some(pair) = split_assignment(arg) {
                            assignments.push(pair);
                            index += 1;
                        } else if arg == "-u" {
                            index += 2;
                        } else if arg.starts_with('-') {
                            index += 1;
                        } else {
                            break;
                        }
                    }
                }
                "nohup" | "exec" | "command" | "builtin" | "nice" => {
                    while words.get(index).is_some_and(|w| w.starts_with('-')) {
                        let takes_value = words[index] == "-n";
                        index += 1 + usize::from(takes_value);
                    }
                }
                _ => {
                    index -= 1;
                    break;
                }
            }
        }
        let words: Vec<String> = words.into_iter().skip(index).collect();
        (!words.is_empty() || !assignments.is_empty()).then_some(SimpleCommand {
            assignments,
            words,
            pipes_out: false,
            sudo,
        })
    }
}

/// `NAME=value` → `(NAME, value)`, when NAME is a valid shell variable name.
fn split_assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| (name.to_owned(), value.to_owned()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `|` or `|&`.
    Pipe,
    /// `)`: ends a subshell, or the patterns of a `case` item.
    Close,
    /// `;;`, `;&` or `;;&`: ends a `case` item.
    CaseItemEnd,
    /// Any other command boundary.
    Break,
}

/// What the next finished word is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// The target of a redirection: not an argument.
    RedirectTarget,
    /// A heredoc's delimiter; `true` for `<<-` (leading tabs stripped).
    HeredocDelimiter(bool),
}

struct Tokenizer {
    chars: Vec<char>,
    pos: usize,
    tokens: Vec<Token>,
    word: String,
    in_word: bool,
    pending: Pending,
    heredocs: Vec<(String, bool)>,
}

impl Tokenizer {
    fn new(text: &str) -> Self {
        Tokenizer {
            chars: text.chars().collect(),
            pos: 0,
            tokens: Vec::new(),
            word: String::new(),
            in_word: false,
            pending: Pending::Nothing,
            heredocs: Vec::new(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn run(mut self) -> Vec<Token> {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => {
                    self.finish_word();
                    self.pos += 1;
                }
                '\n' => {
                    self.finish_word();
                    self.tokens.push(Token::Break);
                    self.pos += 1;
                    self.skip_heredoc_bodies();
                }
                '\\' => {
                    match self.peek(1) {
                        Some('\n') | None => {}
                        Some(escaped) => self.push(escaped),
                    }
                    self.pos += 2;
                }
                '\'' => {
                    self.in_word = true;
                    self.pos += 1;
                    while let Some(ch) = self.peek(0) {
                        self.pos += 1;
                        if ch == '\'' {
                            break;
                        }
                        self.word.push(ch);
                    }
                }
                '"' => self.double_quoted(),
                '`' => self.copy_until('`'),
                '$' if self.peek(1) == Some('(') => self.copy_balanced('(', ')'),
                '$' if self.peek(1) == Some('{') => self.copy_balanced('{', '}'),
                '#' if !self.in_word => {
                    while self.peek(0).is_some_and(|ch| ch != '\n') {
                        self.pos += 1;
                    }
                }
                ';' => match (self.peek(1), self.peek(2)) {
                    (Some(';'), Some('&')) => self.operator(Token::CaseItemEnd, 3),
                    (Some(';' | '&'), _) => self.operator(Token::CaseItemEnd, 2),
                    _ => self.operator(Token::Break, 1),
                },
                '(' => self.operator(Token::Break, 1),
                ')' => self.operator(Token::Close, 1),
                '&' if self.peek(1) == Some('>') => self.redirection(),
                '&' => {
                    let len = if self.peek(1) == Some('&') { 2 } else { 1 };
                    self.operator(Token::Break, len);
                }
                '|' => match self.peek(1) {
                    Some('|') => self.operator(Token::Break, 2),
                    Some('&') => self.operator(Token::Pipe, 2),
                    _ => self.operator(Token::Pipe, 1),
                },
                '<' | '>' => self.redirection(),
                _ => self.push(c),
            }
        }
        self.finish_word();
        self.tokens
    }

    fn push(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
        self.pos += 1;
    }

    fn operator(&mut self, token: Token, len: usize) {
        self.finish_word();
        self.tokens.push(token);
        self.pos += len;
    }

    fn finish_word(&mut self) {
        if !self.in_word {
            return;
        }
        let word = std::mem::take(&mut self.word);
        self.in_word = false;
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Nothing => self.tokens.push(Token::Word(word)),
            Pending::RedirectTarget => {}
            Pending::HeredocDelimiter(strip_tabs) => self.heredocs.push((word, strip_tabs)),
        }
    }

    /// `>`, `>>`, `2>&1`, `&>`, `<`, `<<EOF`, `<<-EOF`, `<<<word`: the operator and its target
    /// are not arguments.
    fn redirection(&mut self) {
        // A word of digits right before the operator is a file descriptor (`2>`).
        if self.in_word && self.word.chars().all(|c| c.is_ascii_digit()) {
            self.word.clear();
            self.in_word = false;
        }
        self.finish_word();
        let first = self.chars[self.pos];
        self.pos += 1;
        if first == '<' && self.peek(0) == Some('<') {
            self.pos += 1;
            if self.peek(0) == Some('<') {
                self.pos += 1;
                self.pending = Pending::RedirectTarget;
            } else {
                let strip_tabs = self.peek(0) == Some('-');
                self.pos += usize::from(strip_tabs);
                self.pending = Pending::HeredocDelimiter(strip_tabs);
            }
            return;
        }
        if self.peek(0).is_some_and(|c| matches!(c, '>' | '&' | '|')) {
            self.pos += 1;
        }
        self.pending = Pending::RedirectTarget;
    }

    fn double_quoted(&mut self) {
        self.in_word = true;
        self.pos += 1;
        while let Some(ch) = self.peek(0) {
            match ch {
                '"' => {
                    self.pos += 1;
                    return;
                }
                '\\' => {
                    match self.peek(1) {
                        Some(next @ ('"' | '\\' | '$' | '`')) => self.word.push(next),
                        Some('\n') => {}
                        Some(next) => {
                            self.word.push('\\');
                            self.word.push(next);
                        }
                        None => {}
                    }
                    self.pos += 2;
                }
                '$' if self.peek(1) == Some('(') => self.copy_balanced('(', ')'),
                '`' => self.copy_until('`'),
                _ => {
                    self.word.push(ch);
                    self.pos += 1;
                }
            }
        }
    }

    /// Copies `` `…` `` verbatim into the word.
    fn copy_until(&mut self, close: char) {
        self.in_word = true;
        self.word.push(self.chars[self.pos]);
        self.pos += 1;
        while let Some(ch) = self.peek(0) {
            self.word.push(ch);
            self.pos += 1;
            if ch == close {
                return;
            }
        }
    }

    /// Copies `$(…)` or `${…}` verbatim into the word, nested pairs and quotes included.
    fn copy_balanced(&mut self, open: char, close: char) {
        self.in_word = true;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(ch) = self.peek(0) {
            self.word.push(ch);
            self.pos += 1;
            match quote {
                Some(q) if ch == q => quote = None,
                Some(_) => {}
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                None if ch == open => depth += 1,
                None if ch == close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                None => {}
            }
        }
    }

    /// After a newline, the bodies of the heredocs opened on the line just ended.
    fn skip_heredoc_bodies(&mut self) {
        for (delimiter, strip_tabs) in std::mem::take(&mut self.heredocs) {
            while self.pos < self.chars.len() {
                let end = self.chars[self.pos..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(self.chars.len(), |i| self.pos + i);
                let line: String = self.chars[self.pos..end].iter().collect();
                self.pos = (end + 1).min(self.chars.len());
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line.trim_end_matches('\r') == delimiter {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Script {
        fn pipe_before_pipefail(&self) -> bool {
            !self.unguarded_pipes().is_empty()
        }
    }

    fn words(script: &Script) -> Vec<String> {
        script
            .commands()
            .iter()
            .map(|c| c.words.join(" "))
            .collect()
    }

    #[test]
    fn splits_on_operators_and_removes_quotes() {
        let script = Script::parse(
            "apt-get update && apt-get install -y 'curl' \"git\" ; echo done || true",
        );
        assert_eq!(
            words(&script),
            [
                "apt-get update",
                "apt-get install -y curl git",
                "echo done",
                "true"
            ]
        );
        assert!(!script.pipe_before_pipefail());
    }

    #[test]
    fn pipes_and_pipefail() {
        let script = Script::parse("curl -fsSL https://x | sh");
        assert!(script.commands()[0].pipes_out);
        assert!(script.pipe_before_pipefail());
        assert!(!Script::parse("set -euxo pipefail; curl x | sh").pipe_before_pipefail());
        assert!(!Script::parse("bash -o pipefail -c 'curl x | sh'").pipe_before_pipefail());
        assert!(!Script::parse("a || b").pipe_before_pipefail());
        let script = Script::parse("curl x | tar xz | tee log; set -o pipefail; a | b");
        let pairs: Vec<(&str, &str)> = script
            .unguarded_pipes()
            .iter()
            .map(|(writer, reader)| (writer.program(), reader.program()))
            .collect();
        assert_eq!(pairs, [("curl", "tar"), ("tar", "tee")]);
    }

    #[test]
    fn redirections_heredocs_and_comments_are_not_words() {
        let script = Script::parse(
            "make 2>&1 >/dev/null\ncat <<-EOF > /etc/x.conf\n\tapt-get install gcc\n\tEOF\n# apt-get install\necho ok",
        );
        assert_eq!(words(&script), ["make", "cat", "echo ok"]);
    }

    #[test]
    fn wrappers_assignments_and_nested_shells() {
        let script = Script::parse(
            "CGO_ENABLED=0 sudo -E env GOOS=linux go build . && sh -c \"cd /x && npm ci\"",
        );
        let first = &script.commands()[0];
        assert_eq!(first.program(), "go");
        assert!(first.sudo && !script.commands()[1].sudo);
        assert_eq!(first.assignment("CGO_ENABLED"), Some("0"));
        assert_eq!(first.assignment("GOOS"), Some("linux"));
        assert_eq!(words(&script)[1..], ["cd /x", "npm ci"]);
        assert_eq!(
            words(&Script::parse("if [ -f x ]; then make; fi")),
            ["[ -f x ]", "make"]
        );
    }

    #[test]
    fn case_patterns_are_not_pipes_or_commands() {
        let script = Script::parse(
            "case \"$arch\" in amd64 | arm64) echo native ;; (*) apt-get install x ;; esac; make",
        );
        assert_eq!(words(&script), ["echo native", "apt-get install x", "make"]);
        assert!(!script.pipe_before_pipefail());
    }

    #[test]
    fn substitutions_stay_in_one_word() {
        let script = Script::parse("echo \"$(uname -m | tr a b)\" ${A:-x y}");
        assert_eq!(script.commands().len(), 1);
        assert!(!script.pipe_before_pipefail());
    }
}
