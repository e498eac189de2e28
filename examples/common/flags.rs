//! Command-line flags of the measuring examples: `--name value` pairs.

/// The value after `--name` on the command line, if given.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The value after `--name`, parsed; a value that does not parse stops the
/// program with a message naming the flag rather than being ignored.
pub fn parsed<T: std::str::FromStr>(name: &str) -> Option<T> {
    flag(name).map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("{name}: cannot parse {s:?}"))
    })
}
