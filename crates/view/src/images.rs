//! The store's images as docker's image commands show them: the rows of `images` (and its
//! `--filter`s), of `history`, and the object `inspect` prints, each a JSON value with docker's
//! field names, so that `--format` templates written for docker work unchanged.

use crate::template::{Template, TemplateError};
use crate::units::{go_time, time_ago};
use serde_json::{Value, json};
use stagecraft_image::{Digest, ImageConfig, Reference, Timestamp};
use stagecraft_report::human_bytes;

/// One tag of the store, with what the listings show of its image.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    /// The tag.
    pub reference: Reference,
    /// What the tag points at: a manifest or an index.
    pub target: Digest,
    /// The image ID (the config digest; an index's own digest).
    pub id: Digest,
    /// The config of this machine's platform's image; `None` when it cannot be read.
    pub config: Option<ImageConfig>,
    /// Its size: config and layers as stored.
    pub size: u64,
    /// The platforms it has images for.
    pub platforms: Vec<String>,
    /// The digest a registry knows the image by (a pulled or pushed manifest), when there is
    /// one: not the store's own manifest of a build, whose layers are uncompressed.
    pub registry_digest: Option<Digest>,
}

impl ImageEntry {
    /// When the image was made (the config's `created`).
    pub fn created(&self) -> Option<Timestamp> {
        self.config
            .as_ref()
            .and_then(|c| c.created.as_deref())
            .and_then(Timestamp::parse)
    }
}

/// An image ID as docker shows it: 12 hex digits, or all of it with `--no-trunc`.
pub fn short_id(id: &Digest, truncate: bool) -> String {
    if truncate {
        id.short().to_owned()
    } else {
        id.to_string()
    }
}

/// `images --filter` values, as docker takes them: `reference=PATTERN` (any may match),
/// `dangling=true|false`, `before=IMAGE`, `since=IMAGE`, `label=KEY[=VALUE]` (all must
/// match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilters {
    /// `reference=` patterns (Go's `path.Match` against `name:tag` or `name`).
    pub references: Vec<String>,
    /// `dangling=`: untagged images. The store lists tags only, so `true` lists nothing.
    pub dangling: Option<bool>,
    /// `before=`: an image; only images created before it are listed.
    pub before: Option<String>,
    /// `since=`: an image; only images created after it are listed.
    pub since: Option<String>,
    /// `label=KEY` or `label=KEY=VALUE`.
    pub labels: Vec<(String, Option<String>)>,
}

impl ImageFilters {
    /// Parses `--filter` values.
    pub fn parse(values: &[String]) -> Result<ImageFilters, String> {
        let mut filters = ImageFilters::default();
        for value in values {
            let (key, argument) = value.split_once('=').ok_or_else(|| {
                format!("bad filter {value:?}: write KEY=VALUE (reference=, dangling=, before=, since=, label=)")
            })?;
            match key {
                "reference" => filters.references.push(argument.to_owned()),
                "dangling" => {
                    filters.dangling = Some(match argument.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(format!(
                                "invalid filter 'dangling={argument}': use true or false"
                            ));
                        }
                    })
                }
                "before" => filters.before = Some(argument.to_owned()),
                "since" => filters.since = Some(argument.to_owned()),
                "label" => filters.labels.push(match argument.split_once('=') {
                    Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                    None => (argument.to_owned(), None),
                }),
                other => {
                    return Err(format!(
                        "invalid filter {other:?}: the image filters are reference, dangling, before, since and label"
                    ));
                }
            }
            if let Some(pattern) = filters.references.last()
                && let Err(reason) = stagecraft_gopath::check_syntax(pattern)
            {
                return Err(format!("invalid filter 'reference={pattern}': {reason}"));
            }
        }
        Ok(filters)
    }

    /// Whether `entry` passes, `before` and `since` already resolved to their images'
    /// creation times.
    pub fn keep(
        &self,
        entry: &ImageEntry,
        before: Option<Timestamp>,
        since: Option<Timestamp>,
    ) -> bool {
        if self.dangling == Some(true) {
            return false;
        }
        let familiar = entry.reference.familiar();
        let name = Reference::parse(&entry.reference.name())
            .map(|r| r.familiar())
            .unwrap_or_default();
        let reference_ok = self.references.is_empty()
            || self.references.iter().any(|pattern| {
                stagecraft_gopath::matches(pattern, &familiar)
                    || stagecraft_gopath::matches(pattern, &name)
            });
        let created = entry.created();
        let before_ok = before.is_none_or(|limit| created.is_some_and(|c| c < limit));
        let since_ok = since.is_none_or(|limit| created.is_some_and(|c| c > limit));
        let labels = entry.config.as_ref().map(|c| &c.config.labels);
        let labels_ok = self.labels.iter().all(|(key, value)| {
            labels
                .and_then(|l| l.get(key))
                .is_some_and(|actual| value.as_ref().is_none_or(|v| v == actual))
        });
        reference_ok && before_ok && since_ok && labels_ok
    }
}

/// What an image row shows (docker's `images` fields, plus `Platforms`), at `now`.
pub fn image_row(entry: &ImageEntry, truncate: bool, now: Timestamp) -> Value {
    let name = Reference::parse(&entry.reference.name())
        .map(|r| r.familiar())
        .unwrap_or_else(|_| entry.reference.name());
    let created = entry.created();
    json!({
        "Containers": "N/A",
        "CreatedAt": created.map(go_time).unwrap_or_default(),
        "CreatedSince": created.map(|c| time_ago(c, now)).unwrap_or_else(|| "N/A".to_owned()),
        "Digest": entry.registry_digest.as_ref().map_or_else(|| "<none>".to_owned(), Digest::to_string),
        "ID": short_id(&entry.id, truncate),
        "Platforms": entry.platforms.join(","),
        "Repository": name,
        "SharedSize": "N/A",
        "Size": human_bytes(entry.size),
        "Tag": entry.reference.tag().unwrap_or("<none>"),
        "UniqueSize": "N/A",
        "VirtualSize": human_bytes(entry.size),
    })
}

/// The header docker prints for a field in a `table` format.
fn header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".to_owned(),
        "CreatedSince" => "CREATED".to_owned(),
        "CreatedAt" => "CREATED AT".to_owned(),
        "CreatedBy" => "CREATED BY".to_owned(),
        "VirtualSize" => "VIRTUAL SIZE".to_owned(),
        "SharedSize" => "SHARED SIZE".to_owned(),
        "UniqueSize" => "UNIQUE SIZE".to_owned(),
        "TotalCount" => "TOTAL".to_owned(),
        other => other.to_uppercase(),
    }
}

/// How a listing is printed: docker's `--format` values.
#[derive(Debug, Clone, PartialEq)]
pub enum ListFormat {
    /// The default table, or `table TEMPLATE` (columns with headers), and headers that
    /// differ from the usual ones for a field.
    Table(Template, Vec<(String, String)>),
    /// `json`: one JSON object per row, per line.
    Json,
    /// A template, one line per row, no header.
    Lines(Template),
}

impl ListFormat {
    /// Parses `--format`; `default_table` is the template of the plain table.
    pub fn parse(format: Option<&str>, default_table: &str) -> Result<ListFormat, TemplateError> {
        let format = format.unwrap_or("table");
        Ok(match format {
            "json" => ListFormat::Json,
            "table" => ListFormat::Table(Template::parse(default_table)?, Vec::new()),
            other => match other.strip_prefix("table ") {
                Some(template) => ListFormat::Table(Template::parse(template)?, Vec::new()),
                None => ListFormat::Lines(Template::parse(other)?),
            },
        })
    }

    /// Heads the column of `field` with `header` in a table (`history` calls `ID` `IMAGE`).
    pub fn with_header(mut self, field: &str, header: &str) -> ListFormat {
        if let ListFormat::Table(_, headers) = &mut self {
            headers.push((field.to_owned(), header.to_owned()));
        }
        self
    }

    /// Prints `rows`, each followed by a newline.
    pub fn render(&self, rows: &[Value]) -> Result<String, TemplateError> {
        match self {
            ListFormat::Json => Ok(rows
                .iter()
                .map(|row| format!("{}\n", serde_json::to_string(row).unwrap_or_default()))
                .collect()),
            ListFormat::Lines(template) => rows
                .iter()
                .map(|row| template.render(row).map(|line| line + "\n"))
                .collect(),
            ListFormat::Table(template, headers) => {
                let mut lines = vec![
                    template
                        .printed_fields()
                        .iter()
                        .map(|field| {
                            headers
                                .iter()
                                .find(|(f, _)| f == field)
                                .map_or_else(|| header(field), |(_, h)| h.clone())
                        })
                        .collect::<Vec<_>>(),
                ];
                for row in rows {
                    let line = template.render(row)?;
                    lines.push(line.split('\t').map(str::to_owned).collect());
                }
                Ok(crate::tabwriter::align(&lines, 10, 3))
            }
        }
    }
}

/// The default `images` table: docker's columns, with the digest for `--digests`, and the
/// platforms last (a multi-platform image lists them all).
pub fn images_table(digests: bool) -> &'static str {
    if digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.Platforms}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.Platforms}}"
    }
}

/// What `system df` counts: the store's parts, with what `prune` (and `prune --all`) would
/// free of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsageCounts {
    /// Distinct tagged images.
    pub images: usize,
    /// Bytes of image content: what tags reach, and what nothing references.
    pub images_size: u64,
    /// Of it, what nothing references (what `prune` frees).
    pub unreferenced_size: u64,
    /// Build cache records.
    pub cache_records: usize,
    /// Bytes of the records and of the content only they keep (what `prune --all` frees).
    pub cache_size: u64,
    /// Cache mounts (`RUN --mount=type=cache`), which no prune removes.
    pub cache_mounts: usize,
    /// Their bytes.
    pub cache_mounts_size: u64,
    /// Context indexes.
    pub context_indexes: usize,
    /// Their bytes (all reclaimable: they are hints).
    pub context_indexes_size: u64,
}

/// The rows of `system df`: docker's fields (`Type`, `TotalCount`, `Active`, `Size`,
/// `Reclaimable`), one per part of the store.
pub fn disk_usage_rows(counts: &DiskUsageCounts) -> Vec<Value> {
    let reclaimable = |size: u64, of: u64| {
        let percent = (size * 100).checked_div(of).unwrap_or(0);
        format!("{} ({percent}%)", human_bytes(size))
    };
    let row = |kind: &str, total: usize, active: String, size: u64, freed: String| json!({"Type": kind, "TotalCount": total.to_string(), "Active": active, "Size": human_bytes(size), "Reclaimable": freed});
    vec![
        row(
            "Images",
            counts.images,
            counts.images.to_string(),
            counts.images_size,
            reclaimable(counts.unreferenced_size, counts.images_size),
        ),
        row(
            "Build Cache",
            counts.cache_records,
            "0".to_owned(),
            counts.cache_size,
            human_bytes(counts.cache_size),
        ),
        row(
            "Cache Mounts",
            counts.cache_mounts,
            counts.cache_mounts.to_string(),
            counts.cache_mounts_size,
            human_bytes(0),
        ),
        row(
            "Context Indexes",
            counts.context_indexes,
            "0".to_owned(),
            counts.context_indexes_size,
            human_bytes(counts.context_indexes_size),
        ),
    ]
}

/// The default `system df` table.
pub const DISK_USAGE_TABLE: &str =
    "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// What `inspect` shows of an image in docker's shape (`docker image inspect`), for
/// templates such as `{{.Id}}` and `{{.Config.Env}}`.
#[derive(Debug, Clone)]
pub struct InspectedImage<'a> {
    /// The image ID.
    pub id: &'a Digest,
    /// Every tag that points at it.
    pub repo_tags: Vec<Reference>,
    /// `name@digest` for the registry digest, when there is one.
    pub repo_digests: Vec<String>,
    /// Its config (this machine's platform's image).
    pub config: &'a ImageConfig,
    /// Its size.
    pub size: u64,
}

/// docker's inspect object for an image.
pub fn inspect_object(image: &InspectedImage<'_>) -> Value {
    let config = image.config;
    let runtime = &config.config;
    let healthcheck = runtime.healthcheck.as_ref().map(|h| {
        json!({
            "Test": h.test, "Interval": h.interval, "Timeout": h.timeout,
            "StartPeriod": h.start_period, "StartInterval": h.start_interval, "Retries": h.retries,
        })
    });
    let set = |items: &std::collections::BTreeSet<String>| {
        (!items.is_empty()).then(|| {
            items
                .iter()
                .map(|k| (k.clone(), json!({})))
                .collect::<serde_json::Map<_, _>>()
        })
    };
    fn null_if_empty(items: &[String]) -> Option<&[String]> {
        (!items.is_empty()).then_some(items)
    }
    json!({
        "Id": image.id.to_string(),
        "RepoTags": image.repo_tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": image.repo_digests,
        "Parent": "",
        "Comment": config.history.last().map(|h| h.comment.clone()).unwrap_or_default(),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.author,
        "Config": {
            "Hostname": "", "Domainname": "", "User": runtime.user,
            "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
            "ExposedPorts": set(&runtime.exposed_ports),
            "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": null_if_empty(&runtime.env),
            "Cmd": runtime.cmd,
            "Healthcheck": healthcheck,
            "ArgsEscaped": runtime.args_escaped,
            "Image": "",
            "Volumes": set(&runtime.volumes),
            "WorkingDir": runtime.working_dir,
            "Entrypoint": runtime.entrypoint,
            "OnBuild": null_if_empty(&runtime.on_build),
            "Labels": (!runtime.labels.is_empty()).then_some(&runtime.labels),
            "StopSignal": runtime.stop_signal,
            "Shell": null_if_empty(&runtime.shell),
        },
        "Architecture": config.architecture,
        "Variant": config.variant,
        "Os": config.os,
        "Size": image.size,
        "RootFS": {
            "Type": config.rootfs.fs_type,
            "Layers": config.rootfs.diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}

/// docker's `history` rows, newest first: each history entry with the layer it made (the
/// non-empty entries take the layers in order).
pub fn history_rows(
    id: &Digest,
    config: &ImageConfig,
    layer_sizes: &[u64],
    truncate: bool,
    human: bool,
    now: Timestamp,
) -> Vec<Value> {
    let mut layers = layer_sizes.iter();
    let mut rows: Vec<Value> = config
        .history
        .iter()
        .map(|entry| {
            let size = if entry.empty_layer {
                0
            } else {
                layers.next().copied().unwrap_or(0)
            };
            let created = entry.created.as_deref().and_then(Timestamp::parse);
            let created_by = entry.created_by.replace('\t', " ");
            json!({
                "ID": "<missing>",
                "CreatedSince": match (created, human) {
                    (Some(c), true) => time_ago(c, now),
                    (Some(c), false) => c.to_string(),
                    (None, _) => "N/A".to_owned(),
                },
                "CreatedAt": created.map(|c| c.to_string()).unwrap_or_default(),
                "CreatedBy": if truncate { ellipsis(&created_by, 45) } else { created_by },
                "Size": if human { human_bytes(size) } else { size.to_string() },
                "Comment": entry.comment,
            })
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["ID"] = Value::String(short_id(id, truncate));
    }
    rows
}

/// The default `history` table.
pub const HISTORY_TABLE: &str =
    "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// `text` cut to `width` characters with a trailing `…`, as docker cuts long cells.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_image::History;

    fn entry(reference: &str, created: &str, labels: &[(&str, &str)]) -> ImageEntry {
        let mut config = ImageConfig {
            created: Some(created.to_owned()),
            ..ImageConfig::default()
        };
        config.config.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let id = Digest::from_hex(&format!("{:a>64}", reference.len())).unwrap();
        ImageEntry {
            reference: Reference::parse(reference).unwrap().with_default_tag(),
            target: id.clone(),
            id,
            config: Some(config),
            size: 1_037_000,
            platforms: vec!["linux/amd64".to_owned()],
            registry_digest: None,
        }
    }

    fn filters(values: &[&str]) -> ImageFilters {
        ImageFilters::parse(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_select_as_docker_does() {
        let old = entry("busybox", "2023-01-01T00:00:00Z", &[("team", "a")]);
        let new = entry(
            "ghcr.io/o/app:1",
            "2024-01-01T00:00:00Z",
            &[("team", "b"), ("x", "")],
        );
        let kept = |f: &ImageFilters, before, since| {
            [&old, &new]
                .iter()
                .filter(|e| f.keep(e, before, since))
                .map(|e| e.reference.familiar())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kept(&filters(&["reference=busybox"]), None, None),
            ["busybox:latest"]
        );
        assert_eq!(
            kept(&filters(&["reference=*:latest"]), None, None),
            ["busybox:latest"]
        );
        assert_eq!(
            kept(&filters(&["reference=ghcr.io/o/*"]), None, None),
            ["ghcr.io/o/app:1"]
        );
        assert_eq!(
            kept(&filters(&["label=team=b"]), None, None),
            ["ghcr.io/o/app:1"]
        );
        assert_eq!(kept(&filters(&["label=team"]), None, None).len(), 2);
        assert!(kept(&filters(&["dangling=true"]), None, None).is_empty());
        assert_eq!(kept(&filters(&["dangling=false"]), None, None).len(), 2);
        let mid = Timestamp::parse("2023-06-01T00:00:00Z");
        assert_eq!(kept(&filters(&["before=x"]), mid, None), ["busybox:latest"]);
        assert_eq!(kept(&filters(&["since=x"]), None, mid), ["ghcr.io/o/app:1"]);
        for (bad, says) in [
            ("color=red", "the image filters are"),
            ("dangling=maybe", "true or false"),
            ("reference", "KEY=VALUE"),
            ("reference=[", "reference=["),
        ] {
            let error = ImageFilters::parse(&[bad.to_owned()]).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn rows_render_in_docker_formats() {
        let now = Timestamp::parse("2024-01-15T00:00:00Z").unwrap();
        let rows = vec![image_row(
            &entry("busybox", "2024-01-01T00:00:00Z", &[]),
            true,
            now,
        )];
        let table = ListFormat::parse(None, images_table(false))
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(
            table,
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE      PLATFORMS\n\
             busybox      latest    aaaaaaaaaaaa   2 weeks ago   1.037MB   linux/amd64\n"
        );
        let lines = ListFormat::parse(Some("{{.Repository}}:{{.Tag}} {{.CreatedAt}}"), "")
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(lines, "busybox:latest 2024-01-01 00:00:00 +0000 UTC\n");
        let json = ListFormat::parse(Some("json"), "")
            .unwrap()
            .render(&rows)
            .unwrap();
        let parsed: Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(
            (parsed["Repository"].as_str(), parsed["Digest"].as_str()),
            (Some("busybox"), Some("<none>"))
        );
        let custom = ListFormat::parse(Some("table {{.ID}}\t{{.Size}}"), "")
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(custom, "IMAGE ID       SIZE\naaaaaaaaaaaa   1.037MB\n");
    }

    #[test]
    fn disk_usage_reads_as_docker_system_df() {
        let rows = disk_usage_rows(&DiskUsageCounts {
            images: 2,
            images_size: 4_000_000,
            unreferenced_size: 1_000_000,
            cache_records: 5,
            cache_size: 300_000,
            cache_mounts: 1,
            cache_mounts_size: 2_000,
            context_indexes: 0,
            context_indexes_size: 0,
        });
        let table = ListFormat::parse(None, DISK_USAGE_TABLE)
            .unwrap()
            .render(&rows)
            .unwrap();
        assert_eq!(
            table,
            "TYPE              TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images            2         2         4MB       1MB (25%)\n\
             Build Cache       5         0         300kB     300kB\n\
             Cache Mounts      1         1         2kB       0B\n\
             Context Indexes   0         0         0B        0B\n"
        );
    }

    #[test]
    fn inspect_has_docker_fields_even_when_the_config_leaves_them_out() {
        let mut config = ImageConfig::default();
        config.config.env = vec!["PATH=/bin".to_owned()];
        let id = Digest::from_hex(&"b".repeat(64)).unwrap();
        let object = inspect_object(&InspectedImage {
            id: &id,
            repo_tags: vec![Reference::parse("app:1").unwrap()],
            repo_digests: vec![],
            config: &config,
            size: 7,
        });
        let render = |t: &str| Template::parse(t).unwrap().render(&object).unwrap();
        assert_eq!(render("{{.Id}}"), format!("sha256:{}", "b".repeat(64)));
        assert_eq!(render("{{.Config.Env}}"), "[PATH=/bin]");
        assert_eq!(
            render("{{.RepoTags}} {{.Config.User}}|{{.Size}}"),
            "[app:1] |7"
        );
        assert_eq!(render("{{json .Config.Entrypoint}}"), "null");
    }

    #[test]
    fn history_is_newest_first_with_layer_sizes() {
        let mut config = ImageConfig::default();
        let step = |by: &str, empty| History {
            created: Some("2024-01-01T00:00:00Z".to_owned()),
            created_by: by.to_owned(),
            empty_layer: empty,
            ..History::default()
        };
        config.history = vec![
            step("ADD rootfs.tar /", false),
            step("ENV A=1", true),
            step(
                &format!("RUN /bin/sh -c {} # buildkit", "x".repeat(60)),
                false,
            ),
        ];
        let id = Digest::from_hex(&"c".repeat(64)).unwrap();
        let now = Timestamp::parse("2024-01-01T00:00:30Z").unwrap();
        let rows = history_rows(&id, &config, &[1000, 2_500_000], true, true, now);
        let fields = |row: &Value| {
            (
                row["ID"].as_str().unwrap().to_owned(),
                row["Size"].as_str().unwrap().to_owned(),
                row["CreatedBy"].as_str().unwrap().chars().count(),
            )
        };
        assert_eq!(
            fields(&rows[0]),
            ("cccccccccccc".to_owned(), "2.5MB".to_owned(), 45)
        );
        assert!(rows[0]["CreatedBy"].as_str().unwrap().ends_with('…'));
        assert_eq!(
            fields(&rows[1]),
            ("<missing>".to_owned(), "0B".to_owned(), 7)
        );
        assert_eq!(
            fields(&rows[2]),
            ("<missing>".to_owned(), "1kB".to_owned(), 16)
        );
        assert_eq!(rows[2]["CreatedSince"], "30 seconds ago");
        let raw = history_rows(&id, &config, &[1000, 2_500_000], false, false, now);
        assert_eq!(raw[0]["ID"], id.to_string());
        assert_eq!(raw[0]["Size"], "2500000");
        assert_eq!(raw[0]["CreatedSince"], "2024-01-01T00:00:00Z");
    }
}
