//! The text buildx prints for `--call=targets` and `--call=outline` (BuildKit's
//! `PrintTargets` and `PrintOutline`: tabwriter columns, a blank line after each section).

use crate::tabwriter::align;
use stagecraft_plan::subrequests::{Outline, OutlineMount, TargetList};

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// `--call=targets`: every stage with its description; the default one says so.
pub fn render_targets(list: &TargetList) -> String {
    let mut rows = vec![row(&["TARGET", "DESCRIPTION"])];
    for target in &list.targets {
        let name = match (target.name.as_str(), target.default) {
            ("", true) => "(default)".to_owned(),
            (name, true) => format!("{name} (default)"),
            (name, false) => name.to_owned(),
        };
        rows.push(vec![name, target.description.clone()]);
    }
    align(&rows, 0, 1)
}

/// `--call=outline`: the target, its build arguments, secrets and SSH agents.
pub fn render_outline(outline: &Outline) -> String {
    let mut out = String::new();
    if !outline.name.is_empty() || !outline.description.is_empty() {
        let name = if outline.name.is_empty() {
            "(default)"
        } else {
            &outline.name
        };
        let mut rows = vec![row(&["TARGET:", name])];
        if !outline.description.is_empty() {
            rows.push(row(&["DESCRIPTION:", &outline.description]));
        }
        out.push_str(&align(&rows, 0, 1));
        out.push('\n');
    }
    if !outline.args.is_empty() {
        let mut rows = vec![row(&["BUILD ARG", "VALUE", "DESCRIPTION"])];
        rows.extend(
            outline
                .args
                .iter()
                .map(|a| row(&[&a.name, &a.value, &a.description])),
        );
        out.push_str(&align(&rows, 0, 3));
        out.push('\n');
    }
    for (title, mounts) in [("SECRET", &outline.secrets), ("SSH", &outline.ssh)] {
        if mounts.is_empty() {
            continue;
        }
        let mut rows = vec![row(&[title, "REQUIRED"])];
        rows.extend(
            mounts
                .iter()
                .map(|m: &OutlineMount| row(&[&m.name, if m.required { "true" } else { "" }])),
        );
        out.push_str(&align(&rows, 0, 3));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_plan::{Plan, PlanOptions};

    const DOCKERFILE: &str = "\
# GO_VERSION picks the toolchain
ARG GO_VERSION=1.22
# build compiles it
FROM golang:${GO_VERSION} AS build
ARG VERSION=dev
RUN --mount=type=secret,id=token,required=true make
FROM scratch
COPY --from=build /out /
";

    #[test]
    fn targets_and_outline_print_as_buildx_prints_them() {
        let file = stagecraft_dockerfile::parse_str("Dockerfile", DOCKERFILE).unwrap();
        let options = PlanOptions::default();
        let plan = Plan::new(&file, &options).unwrap();
        assert_eq!(
            render_targets(&stagecraft_plan::subrequests::list_targets(&file, &plan)),
            "TARGET    DESCRIPTION\nbuild     compiles it\n(default) \n"
        );
        assert_eq!(
            render_outline(&stagecraft_plan::subrequests::outline(
                &file, &plan, &options
            )),
            "BUILD ARG    VALUE   DESCRIPTION\n\
             GO_VERSION   1.22    picks the toolchain\n\
             VERSION      dev     \n\
             \n\
             SECRET   REQUIRED\n\
             token    true\n\
             \n"
        );
        let options = PlanOptions {
            target: Some("build".to_owned()),
            ..PlanOptions::default()
        };
        let plan = Plan::new(&file, &options).unwrap();
        let text = render_outline(&stagecraft_plan::subrequests::outline(
            &file, &plan, &options,
        ));
        assert!(
            text.starts_with("TARGET:      build\nDESCRIPTION: compiles it\n\n"),
            "{text}"
        );
    }
}
