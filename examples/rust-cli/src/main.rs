//! Prints a greeting; the build around it is what the example is about.

fn render(n: u64) -> String {
    format!("hello from a slim runtime, {n} times")
}

fn main() {
    println!("{}", render(42));
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders() {
        assert!(super::render(7).ends_with("7 times"));
    }
}
