//! The rules, grouped by what they need to see, and the small helpers several of them share.

pub(crate) mod context;
mod dispatch;
mod file;
mod local_images;
mod multistage;
mod practices;
mod shellcheck;

use crate::RuleSelection;
use crate::model::{Ctx, Model, Sink, Step};
use crate::script::SimpleCommand;
use stagecraft_dockerfile::CommandKind;
use stagecraft_shell::Lexer;

pub(crate) use dispatch::DEFAULT_PATH;
pub(crate) use stagecraft_gopath::{clean as clean_path, matches as glob_match};

/// The groups hold BuildKit's checks (`file`, `dispatch`) apart from stagecraft's own
/// (`practices`, `multistage`, `context`), so a build runs only the former.
///
/// The checks that need only the file grouped into stages. They run even when the build plan
/// cannot be made (BuildKit too reports them before it fails).
pub(crate) fn run_without_plan(model: &Model<'_>, sink: &mut Sink<'_>, rules: RuleSelection) {
    file::check(model, sink);
    if rules == RuleSelection::All {
        practices::copy_from(model, sink);
    }
}

/// The checks that need the stage graph: which stage is built from which, what the target
/// needs.
pub(crate) fn run_with_plan(ctx: &Ctx<'_>, sink: &mut Sink<'_>, rules: RuleSelection) {
    dispatch::check(ctx, sink);
    if rules == RuleSelection::All {
        practices::check(ctx, sink);
        multistage::check(ctx, sink);
        context::check(ctx, sink);
        shellcheck::check(ctx, sink, &ctx.model.options.shellcheck);
    }
}

/// The values `ENV`s and `ARG` defaults give variables along a stage chain, expanded as the
/// build expands them (`ARG MODE=production` then `ENV NODE_ENV=$MODE`), for rules that ask
/// whether, say, `CGO_ENABLED=0` is in force at some step.
struct Variables {
    values: Vec<(String, String)>,
    lexer: Lexer,
}

impl Variables {
    fn new(escape: char) -> Self {
        Variables {
            values: Vec::new(),
            lexer: Lexer::new(escape),
        }
    }

    /// Takes in what an `ENV` or `ARG` step sets.
    fn observe(&mut self, step: &Step<'_>) {
        match &step.command.kind {
            CommandKind::Env(pairs) => {
                // All pairs of one ENV expand in the scope before it, as in BuildKit.
                let set: Vec<(String, String)> = pairs
                    .iter()
                    .map(|pair| (pair.key.value.clone(), self.expand(&pair.value.value)))
                    .collect();
                self.values.extend(set);
            }
            CommandKind::Arg(declarations) => {
                for declaration in declarations {
                    if let Some(default) = &declaration.default {
                        let value = self.expand(default);
                        self.values.push((declaration.name.clone(), value));
                    }
                }
            }
            _ => {}
        }
    }

    fn expand(&self, word: &str) -> String {
        self.lexer
            .process_word(word, &self.values)
            .unwrap_or_else(|_| word.to_owned())
    }

    /// `word` expanded, or `None` when it uses a variable nothing here sets (the base image
    /// may: its value is unknown, not empty).
    fn expand_known(&self, word: &str) -> Option<String> {
        let expansion = self
            .lexer
            .process_word_with_matches(word, &self.values)
            .ok()?;
        expansion.unmatched.is_empty().then_some(expansion.result)
    }

    /// The current value of `name`, if something set it.
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// How a command is shown in messages: its program and first argument (`npm ci`).
fn display(command: &SimpleCommand) -> String {
    command
        .words
        .iter()
        .take(2)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sources a COPY or ADD takes from the build context, cleaned (`./src/` → `src`): none
/// for `COPY --from`, URLs, git repositories or sources with variables.
fn context_sources(step: &Step<'_>) -> Vec<String> {
    let paths = match &step.command.kind {
        CommandKind::Copy(copy) if copy.from.is_none() => &copy.paths,
        CommandKind::Add(add) => &add.paths,
        _ => return Vec::new(),
    };
    paths
        .sources
        .iter()
        .map(|source| source.value.as_str())
        .filter(|source| !source.contains('$') && !dispatch::is_remote(source))
        .map(clean_path)
        .collect()
}

/// Whether a context source copies the whole context: `.`, `/` or `*`.
fn is_whole_context(source: &str) -> bool {
    matches!(source, "." | "/" | "*")
}

/// Whether copying `source` (cleaned) brings `path` (relative to the context root) along: the
/// whole context, the path itself, a directory above it, or a glob matching it or a directory
/// above it.
fn source_covers(source: &str, path: &str) -> bool {
    if source == "." || source == "/" {
        return true;
    }
    let source = source.trim_start_matches('/');
    let source_parts: Vec<&str> = source.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    source_parts.len() <= path_parts.len()
        && source_parts
            .iter()
            .zip(&path_parts)
            .all(|(pattern, part)| glob_match(pattern, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage() {
        assert!(source_covers(".", "node_modules"));
        assert!(source_covers("src", "src/app/.env"));
        assert!(source_covers("*", ".env"));
        assert!(!source_covers("src", "srcs/.env"));
        assert!(!source_covers("src/app", "src"));
    }
}
