//! Query parameter values as the Kubernetes API server reads them.

/// A boolean parameter (`watch`, `allowWatchBookmarks`, ...). Kubernetes parses them with
/// Go's `strconv.ParseBool`, so clients send any of its spellings: client-go sends `true`,
/// the Python client `True`, curl users `1`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// True if the parameter is present and true in any of Go's spellings.
pub fn is_true(value: Option<&str>) -> bool {
    value.and_then(parse_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert!(is_true(Some(yes)), "{yes}");
        }
        for no in ["0", "false", "False", "yes", "", "tRuE"] {
            assert!(!is_true(Some(no)), "{no}");
        }
        assert!(!is_true(None));
        assert_eq!(parse_bool("F"), Some(false));
        assert_eq!(parse_bool("on"), None);
    }
}
