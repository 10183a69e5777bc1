//! Typed instructions grouped into build stages: BuildKit's `instructions.Parse`. This is where
//! flags are checked against what each instruction accepts, argument counts are enforced and
//! `FROM … AS name` starts a stage. Variables are not expanded here; the planner does that.

use crate::ast::{Arguments, Dockerfile, Heredoc, Instruction, KeyValue, Keyword, Word};
use crate::diagnostic::{Code, ParseError};
use crate::duration::parse_go_duration;
use crate::flags::{FlagKind, FlagSpec, ParsedFlags, parse_flags};
use crate::heredoc::parse_marker;
use crate::source::Span;
use std::time::Duration;

/// A Dockerfile as build stages, plus the `ARG`s declared before the first `FROM`.
#[derive(Debug, Clone)]
pub struct Stages {
    /// `ARG`s before the first `FROM`: usable in `FROM` lines, and in stages that re-declare them.
    pub meta_args: Vec<Command>,
    /// Stages in file order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions after it.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Position in the file, from 0 (what `COPY --from=0` names).
    pub index: usize,
    /// The stage name, lowercased (`FROM x AS Build` → `build`).
    pub name: Option<String>,
    /// The base as written, before expansion: an image reference, an earlier stage or `scratch`.
    pub base: Word,
    /// `--platform=`, unexpanded.
    pub platform: Option<Word>,
    /// The `FROM` instruction's location.
    pub location: Location,
    /// The instructions of the stage.
    pub commands: Vec<Command>,
}

/// Where an instruction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The whole instruction.
    pub span: Span,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line.
    pub end_line: usize,
    /// The logical line as written (continuations joined).
    pub original: String,
}

impl Location {
    fn of(instruction: &Instruction) -> Self {
        Location {
            span: instruction.span,
            start_line: instruction.start_line,
            end_line: instruction.end_line,
            original: instruction.original.clone(),
        }
    }
}

/// A typed instruction and where it came from.
#[derive(Debug, Clone)]
pub struct Command {
    /// Which instruction.
    pub keyword: Keyword,
    /// Where it is.
    pub location: Location,
    /// What it says.
    pub kind: CommandKind,
}

/// The typed content of each instruction.
#[derive(Debug, Clone)]
pub enum CommandKind {
    /// `ADD`
    Add(AddCommand),
    /// `ARG` — one or more declarations.
    Arg(Vec<ArgDeclaration>),
    /// `CMD`
    Cmd(CommandLine),
    /// `COPY`
    Copy(CopyCommand),
    /// `ENTRYPOINT`
    Entrypoint(CommandLine),
    /// `ENV` pairs, values unexpanded.
    Env(Vec<KeyValue>),
    /// `EXPOSE` ports (sorted as BuildKit sorts them, before expansion).
    Expose(Vec<Word>),
    /// `HEALTHCHECK`
    Healthcheck(Healthcheck),
    /// `LABEL` pairs.
    Label(Vec<KeyValue>),
    /// `MAINTAINER` (deprecated).
    Maintainer(Word),
    /// `ONBUILD` — the trigger as text, to be stored in the image config.
    Onbuild(String),
    /// `RUN`
    Run(RunCommand),
    /// `SHELL` — the new shell, exec form only.
    Shell(Vec<String>),
    /// `STOPSIGNAL`
    StopSignal(Word),
    /// `USER`
    User(Word),
    /// `VOLUME` paths.
    Volume(Vec<Word>),
    /// `WORKDIR`
    Workdir(Word),
}

/// An `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDeclaration {
    /// The name.
    pub name: String,
    /// The default, unexpanded (`None` for a bare `ARG name`).
    pub default: Option<String>,
    /// Where the declaration is.
    pub span: Span,
}

/// A command line of `RUN`, `CMD`, `ENTRYPOINT` or `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the argument vector. Shell form: one string for the shell.
    pub args: Vec<String>,
    /// True for shell form: run through the stage's `SHELL`.
    pub prepend_shell: bool,
    /// Heredocs the command reads (RUN only).
    pub heredocs: Vec<Heredoc>,
}

/// `RUN` with its BuildKit flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// The command.
    pub command: CommandLine,
    /// `--mount=` values, unexpanded and unparsed.
    pub mounts: Vec<Word>,
    /// `--network=`: `default`, `none` or `host`.
    pub network: String,
    /// `--security=`: `sandbox` or `insecure`.
    pub security: String,
    /// `--device=` values.
    pub devices: Vec<Word>,
}

/// An inline source of `COPY`/`ADD` written as a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The file name (the heredoc's terminator).
    pub path: String,
    /// The content, tabs already removed for `<<-`.
    pub data: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
}

/// Sources and destination shared by `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesAndDest {
    /// Source paths or URLs, unexpanded.
    pub sources: Vec<Word>,
    /// Heredoc sources.
    pub inline: Vec<InlineSource>,
    /// The destination, unexpanded.
    pub dest: Word,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// What to copy where.
    pub paths: SourcesAndDest,
    /// `--from=`: a stage name or index, or an image.
    pub from: Option<Word>,
    /// `--chown=`
    pub chown: Option<Word>,
    /// `--chmod=`
    pub chmod: Option<Word>,
    /// `--link`
    pub link: bool,
    /// `--parents`
    pub parents: bool,
    /// `--exclude=` patterns.
    pub excludes: Vec<Word>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCommand {
    /// What to add where.
    pub paths: SourcesAndDest,
    /// `--chown=`
    pub chown: Option<Word>,
    /// `--chmod=`
    pub chmod: Option<Word>,
    /// `--link`
    pub link: bool,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum=` for remote sources.
    pub checksum: Option<Word>,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
    /// `--exclude=` patterns.
    pub excludes: Vec<Word>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [flags] CMD …`.
    Check {
        /// `["CMD", …]` (exec form) or `["CMD-SHELL", "…"]`, as in the image config.
        test: Vec<String>,
        /// `--interval`, zero when unset.
        interval: Duration,
        /// `--timeout`
        timeout: Duration,
        /// `--start-period`
        start_period: Duration,
        /// `--start-interval`
        start_interval: Duration,
        /// `--retries`, zero when unset.
        retries: i32,
    },
}

const NO_FLAGS: FlagSpec = &[];
const FROM_FLAGS: FlagSpec = &[("platform", FlagKind::String)];
const COPY_FLAGS: FlagSpec = &[
    ("chown", FlagKind::String),
    ("from", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
    ("parents", FlagKind::Bool),
];
const ADD_FLAGS: FlagSpec = &[
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::String),
    ("unpack", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
];
const RUN_FLAGS: FlagSpec = &[
    ("mount", FlagKind::Strings),
    ("network", FlagKind::String),
    ("security", FlagKind::String),
    ("device", FlagKind::Strings),
];
const HEALTHCHECK_FLAGS: FlagSpec = &[
    ("interval", FlagKind::String),
    ("timeout", FlagKind::String),
    ("start-period", FlagKind::String),
    ("start-interval", FlagKind::String),
    ("retries", FlagKind::String),
];

impl Dockerfile {
    /// Groups the instructions into stages and checks each one as BuildKit's instruction
    /// parser does.
    pub fn stages(&self) -> Result<Stages, ParseError> {
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in &self.instructions {
            let checker = Checker {
                file: self,
                instruction,
            };
            if instruction.keyword == Keyword::From {
                stages.push(checker.stage(stages.len())?);
                continue;
            }
            let command = checker.command()?;
            match stages.last_mut() {
                Some(stage) => stage.commands.push(command),
                None if instruction.keyword == Keyword::Arg => meta_args.push(command),
                None => {
                    return Err(checker
                        .error(
                            instruction.keyword_text.span,
                            "no build stage in current context",
                        )
                        .with_hint(
                            "start the Dockerfile with FROM (only ARG may come before it)",
                        ));
                }
            }
        }
        Ok(Stages { meta_args, stages })
    }
}

struct Checker<'a> {
    file: &'a Dockerfile,
    instruction: &'a Instruction,
}

impl Checker<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> ParseError {
        ParseError::new(Code::Instruction, &self.file.source, span, message)
    }

    fn whole(&self) -> Span {
        self.instruction.span
    }

    fn name(&self) -> String {
        self.instruction.keyword.to_string()
    }

    fn flags(&self, spec: FlagSpec) -> Result<ParsedFlags, ParseError> {
        parse_flags(&self.instruction.flags, spec).map_err(|(word, message, hint)| {
            let error = self.error(word.span, message);
            match hint {
                Some(hint) => error.with_hint(hint),
                None => error,
            }
        })
    }

    fn words(&self) -> &[Word] {
        self.instruction.args.words()
    }

    fn at_least_one(&self) -> ParseError {
        self.error(
            self.whole(),
            format!("{} requires at least one argument", self.name()),
        )
    }

    fn exactly_one(&self) -> Result<Word, ParseError> {
        match self.words() {
            [one] => Ok(one.clone()),
            _ => Err(self.error(
                self.whole(),
                format!("{} requires exactly one argument", self.name()),
            )),
        }
    }

    fn key_values(&self) -> Result<Vec<KeyValue>, ParseError> {
        let Arguments::KeyValues(pairs) = &self.instruction.args else {
            return Err(self.at_least_one());
        };
        if pairs.is_empty() {
            return Err(self.at_least_one());
        }
        if let Some(blank) = pairs.iter().find(|p| p.key.value.is_empty()) {
            return Err(self.error(
                blank.key.span,
                format!("{} names can not be blank", self.name()),
            ));
        }
        Ok(pairs.clone())
    }

    fn command_line(&self) -> CommandLine {
        let args = self.words();
        let args: Vec<String> = if self.instruction.json || args.is_empty() {
            args.iter().map(|w| w.value.clone()).collect()
        } else {
            vec![
                args.iter()
                    .map(|w| w.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        };
        CommandLine {
            args,
            prepend_shell: !self.instruction.json,
            heredocs: self.instruction.heredocs.clone(),
        }
    }

    fn stage(&self, index: usize) -> Result<Stage, ParseError> {
        let args = self.words();
        let name = match args {
            [_] => None,
            [_, as_word, name] if as_word.value.eq_ignore_ascii_case("as") => {
                let lower = name.value.to_lowercase();
                if !is_valid_stage_name(&lower) {
                    return Err(self
                        .error(
                            name.span,
                            format!(
                                "invalid name for build stage: {}, name can't start with a number or contain symbols",
                                crate::go_quote(&name.value)
                            ),
                        )
                        .with_hint("stage names are lowercase letters, digits, '-', '_' and '.', starting with a letter"));
                }
                Some(lower)
            }
            _ => {
                return Err(self
                    .error(self.whole(), "FROM requires either one or three arguments")
                    .with_hint("write `FROM image` or `FROM image AS name`"));
            }
        };
        let flags = self.flags(FROM_FLAGS)?;
        Ok(Stage {
            index,
            name,
            base: args[0].clone(),
            platform: flags.string("platform"),
            location: Location::of(self.instruction),
            commands: Vec::new(),
        })
    }

    fn command(&self) -> Result<Command, ParseError> {
        let instruction = self.instruction;
        let kind = match instruction.keyword {
            Keyword::From => unreachable!("stages are handled by the caller"),
            Keyword::Env => {
                self.flags(NO_FLAGS)?;
                CommandKind::Env(self.key_values()?)
            }
            Keyword::Label => {
                self.flags(NO_FLAGS)?;
                CommandKind::Label(self.key_values()?)
            }
            Keyword::Maintainer => {
                let word = self.exactly_one()?;
                self.flags(NO_FLAGS)?;
                CommandKind::Maintainer(word)
            }
            Keyword::Add => {
                self.require_destination()?;
                let flags = self.flags(ADD_FLAGS)?;
                CommandKind::Add(AddCommand {
                    paths: self.sources_and_dest()?,
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link: flags.bool("link").unwrap_or(false),
                    keep_git_dir: flags.bool("keep-git-dir"),
                    checksum: flags.string("checksum"),
                    unpack: flags.bool("unpack"),
                    excludes: flags.strings("exclude"),
                })
            }
            Keyword::Copy => {
                self.require_destination()?;
                let flags = self.flags(COPY_FLAGS)?;
                CommandKind::Copy(CopyCommand {
                    paths: self.sources_and_dest()?,
                    from: flags.string("from"),
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link: flags.bool("link").unwrap_or(false),
                    parents: flags.bool("parents").unwrap_or(false),
                    excludes: flags.strings("exclude"),
                })
            }
            Keyword::Onbuild => self.onbuild()?,
            Keyword::Workdir => {
                let word = self.exactly_one()?;
                self.flags(NO_FLAGS)?;
                CommandKind::Workdir(word)
            }
            Keyword::Run => self.run()?,
            Keyword::Cmd => {
                self.flags(NO_FLAGS)?;
                CommandKind::Cmd(self.command_line())
            }
            Keyword::Entrypoint => {
                self.flags(NO_FLAGS)?;
                CommandKind::Entrypoint(self.command_line())
            }
            Keyword::Healthcheck => CommandKind::Healthcheck(self.healthcheck()?),
            Keyword::Expose => {
                if self.words().is_empty() {
                    return Err(self.at_least_one());
                }
                self.flags(NO_FLAGS)?;
                let mut ports = self.words().to_vec();
                ports.sort_by(|a, b| a.value.cmp(&b.value));
                CommandKind::Expose(ports)
            }
            Keyword::User => {
                let word = self.exactly_one()?;
                self.flags(NO_FLAGS)?;
                CommandKind::User(word)
            }
            Keyword::Volume => {
                if self.words().is_empty() {
                    return Err(self.at_least_one());
                }
                self.flags(NO_FLAGS)?;
                let mut volumes = Vec::new();
                for word in self.words() {
                    let trimmed = word.value.trim();
                    if trimmed.is_empty() {
                        return Err(
                            self.error(word.span, "VOLUME specified can not be an empty string")
                        );
                    }
                    volumes.push(Word {
                        value: trimmed.to_owned(),
                        span: word.span,
                    });
                }
                CommandKind::Volume(volumes)
            }
            // BuildKit parses no flags for STOPSIGNAL and ARG: any are ignored.
            Keyword::Stopsignal => CommandKind::StopSignal(self.exactly_one()?),
            Keyword::Arg => CommandKind::Arg(self.arg()?),
            Keyword::Shell => {
                self.flags(NO_FLAGS)?;
                let line = self.command_line();
                if line.args.is_empty() {
                    return Err(self.at_least_one());
                }
                if !instruction.json {
                    return Err(self
                        .error(
                            self.whole(),
                            "SHELL requires the arguments to be in JSON form",
                        )
                        .with_hint("write SHELL [\"/bin/sh\", \"-c\"]"));
                }
                CommandKind::Shell(line.args)
            }
        };
        Ok(Command {
            keyword: instruction.keyword,
            location: Location::of(instruction),
            kind,
        })
    }

    fn require_destination(&self) -> Result<(), ParseError> {
        if self.words().len() < 2 {
            return Err(self
                .error(
                    self.whole(),
                    format!(
                        "{} requires at least two arguments, but only one was provided. Destination could not be determined",
                        self.name()
                    ),
                )
                .with_hint(format!("write `{} SOURCE... DEST`", self.name())));
        }
        Ok(())
    }

    fn sources_and_dest(&self) -> Result<SourcesAndDest, ParseError> {
        let words = self.words();
        let (dest, sources) = words.split_last().expect("checked: at least two arguments");
        if parse_marker(&dest.value).ok().flatten().is_some() {
            return Err(self.error(
                dest.span,
                format!("{} cannot accept a heredoc as a destination", self.name()),
            ));
        }
        let mut paths = Vec::new();
        let mut inline = Vec::new();
        for source in sources {
            match parse_marker(&source.value).ok().flatten() {
                Some(marker) => {
                    let heredoc = self
                        .instruction
                        .heredocs
                        .iter()
                        .find(|h| h.name == marker.name);
                    let data = heredoc.map_or_else(String::new, |h| {
                        if marker.chomp {
                            h.chomped_content()
                        } else {
                            h.content.clone()
                        }
                    });
                    inline.push(InlineSource {
                        path: marker.name,
                        data,
                        expand: marker.expand,
                    });
                }
                None => paths.push(source.clone()),
            }
        }
        Ok(SourcesAndDest {
            sources: paths,
            inline,
            dest: dest.clone(),
        })
    }

    fn onbuild(&self) -> Result<CommandKind, ParseError> {
        let Arguments::Trigger(trigger) = &self.instruction.args else {
            return Err(self.at_least_one());
        };
        self.flags(NO_FLAGS)?;
        if matches!(trigger.keyword, Keyword::Maintainer | Keyword::From) {
            return Err(self.error(
                trigger.keyword_text.span,
                format!("{} isn't allowed as an ONBUILD trigger", trigger.keyword),
            ));
        }
        let mut expression = trigger.original.clone();
        for heredoc in &self.instruction.heredocs {
            expression.push('\n');
            expression.push_str(&heredoc.content);
            expression.push_str(&heredoc.name);
        }
        Ok(CommandKind::Onbuild(expression))
    }

    fn run(&self) -> Result<CommandKind, ParseError> {
        let flags = self.flags(RUN_FLAGS)?;
        let network = flags.string("network");
        if let Some(word) = &network
            && !matches!(word.value.as_str(), "default" | "none" | "host")
        {
            return Err(self
                .error(
                    word.span,
                    format!("invalid network mode {}", crate::go_quote(&word.value)),
                )
                .with_hint("use --network=default, --network=none or --network=host"));
        }
        let security = flags.string("security");
        if let Some(word) = &security
            && !matches!(word.value.as_str(), "sandbox" | "insecure")
        {
            return Err(self.error(
                word.span,
                format!("security {} is not valid", crate::go_quote(&word.value)),
            ));
        }
        Ok(CommandKind::Run(RunCommand {
            command: self.command_line(),
            mounts: flags.strings("mount"),
            network: network.map_or_else(|| "default".to_owned(), |w| w.value),
            security: security.map_or_else(|| "sandbox".to_owned(), |w| w.value),
            devices: flags.strings("device"),
        }))
    }

    fn healthcheck(&self) -> Result<Healthcheck, ParseError> {
        let words = self.words();
        let Some((kind, rest)) = words.split_first() else {
            return Err(self.at_least_one());
        };
        let kind_upper = kind.value.to_uppercase();
        if kind_upper == "NONE" {
            if !rest.is_empty() {
                return Err(self.error(self.whole(), "HEALTHCHECK NONE takes no arguments"));
            }
            return Ok(Healthcheck::None);
        }
        let flags = self.flags(HEALTHCHECK_FLAGS)?;
        if kind_upper != "CMD" {
            return Err(self
                .error(
                    kind.span,
                    format!(
                        "Unknown type {} in HEALTHCHECK (try CMD)",
                        crate::go_quote(&kind_upper)
                    ),
                )
                .with_hint("write HEALTHCHECK CMD command, or HEALTHCHECK NONE"));
        }
        let mut test: Vec<String> = if self.instruction.json {
            rest.iter().map(|w| w.value.clone()).collect()
        } else if rest.is_empty() {
            Vec::new()
        } else {
            vec![
                rest.iter()
                    .map(|w| w.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        };
        if test.is_empty() {
            return Err(self.error(self.whole(), "Missing command after HEALTHCHECK CMD"));
        }
        test.insert(
            0,
            if self.instruction.json {
                "CMD"
            } else {
                "CMD-SHELL"
            }
            .to_owned(),
        );
        let interval = |name: &str| -> Result<Duration, ParseError> {
            let Some(word) = flags.string(name) else {
                return Ok(Duration::ZERO);
            };
            if word.value.is_empty() {
                return Ok(Duration::ZERO);
            }
            match parse_go_duration(&word.value) {
                Err(message) => Err(self.error(word.span, message)),
                Ok(Some(d)) if d.is_zero() || d >= Duration::from_millis(1) => Ok(d),
                Ok(_) => Err(self.error(
                    word.span,
                    format!("Interval {} cannot be less than 1ms", crate::go_quote(name)),
                )),
            }
        };
        let retries = match flags.string("retries") {
            None => 0,
            Some(word) if word.value.is_empty() => 0,
            Some(word) => {
                let parsed: i64 = word.value.parse().map_err(|_| {
                    self.error(
                        word.span,
                        format!(
                            "strconv.ParseInt: parsing {}: invalid syntax",
                            crate::go_quote(&word.value)
                        ),
                    )
                })?;
                if parsed < 0 {
                    return Err(self.error(
                        word.span,
                        format!("--retries cannot be negative ({parsed})"),
                    ));
                }
                i32::try_from(parsed).map_err(|_| {
                    self.error(
                        word.span,
                        format!(
                            "strconv.ParseInt: parsing {}: value out of range",
                            crate::go_quote(&word.value)
                        ),
                    )
                })?
            }
        };
        Ok(Healthcheck::Check {
            test,
            interval: interval("interval")?,
            timeout: interval("timeout")?,
            start_period: interval("start-period")?,
            start_interval: interval("start-interval")?,
            retries,
        })
    }

    fn arg(&self) -> Result<Vec<ArgDeclaration>, ParseError> {
        if self.words().is_empty() {
            return Err(self.at_least_one());
        }
        self.words()
            .iter()
            .map(|word| match word.value.split_once('=') {
                Some(("", _)) => Err(self.error(word.span, "ARG names can not be blank")),
                Some((name, default)) => Ok(ArgDeclaration {
                    name: name.to_owned(),
                    default: Some(default.to_owned()),
                    span: word.span,
                }),
                None => Ok(ArgDeclaration {
                    name: word.value.clone(),
                    default: None,
                    span: word.span,
                }),
            })
            .collect()
    }
}

/// BuildKit's `^[a-z][a-z0-9-_.]*$`.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}
