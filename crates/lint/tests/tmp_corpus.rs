//! tmp
#[test]
fn corpus() {
    let root = std::path::Path::new("/tmp/corpus");
    let mut stack = vec![root.to_path_buf()];
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p); continue; }
            let text = std::fs::read_to_string(&p).unwrap();
            let src = stagecraft_dockerfile::SourceFile::new(p.display().to_string(), text);
            let f = stagecraft_lint::lint_source(src, &Default::default());
            for x in &f { *counts.entry(x.rule.to_string()).or_default() += 1; }
            let filter = std::env::var("RULE").unwrap_or_default();
            for x in f.iter().filter(|x| filter.is_empty() || x.rule == filter) {
                println!("{}:{}: {}[{}] {}", x.file, x.line, x.severity, x.rule, x.message);
            }
        }
    }
    println!("{counts:#?}");
}
