//! Differential tests: several hundred generated command lines — every
//! command with missing, extra, negative, overflowing, non-numeric and
//! misplaced tokens, wrong case, odd spacing and empty lines — sent to a real
//! memcached and to Keyway's memory route; the reply bytes must be the same
//! (the version string and CAS ids aside). A difference is either fixed or
//! listed in `KNOWN` with its reason (and in README "Protocol compatibility").

mod common;

use common::{exchange, show, start_keyway, start_memcached, ONE_MEMORY_ROUTE};

/// Numeric tokens that are not plain small numbers.
const ODD_NUMBERS: &[&str] = &[
    "-1",
    "0",
    "4294967295",
    "4294967296",
    "-2147483649",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "x",
    "1x",
    "+1",
    "0x10",
    "１",
];

/// Each command's well-formed line, with `N` where a number goes.
const TEMPLATES: &[&str] = &[
    "get k",
    "gets k",
    "gat N k",
    "gats N k",
    "set k N N 2",
    "add k N N 2",
    "replace k N N 2",
    "append k N N 2",
    "prepend k N N 2",
    "cas k N N 2 N",
    "delete k",
    "delete k N",
    "incr k N",
    "decr k N",
    "touch k N",
    "flush_all N",
    "verbosity N",
    "version",
    "quit",
];

fn is_storage(command: &str) -> bool {
    matches!(
        command,
        "set" | "add" | "replace" | "append" | "prepend" | "cas"
    )
}

/// The lines a template yields: as written (numbers 1), each numeric field
/// odd (with and without a trailing `noreply`), each token dropped, one token too many, `noreply` at each place,
/// the command in upper case, and odd spacing.
fn variants(template: &str) -> Vec<String> {
    let tokens: Vec<&str> = template.split(' ').collect();
    let plain: Vec<String> = tokens
        .iter()
        .map(|t| {
            if *t == "N" {
                "1".to_string()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut lines = vec![plain.join(" ")];
    for (i, token) in tokens.iter().enumerate() {
        if *token == "N" {
            for odd in ODD_NUMBERS {
                let mut line = plain.clone();
                line[i] = odd.to_string();
                lines.push(line.join(" "));
                // Refused under noreply: memcached says nothing at all.
                lines.push(format!("{} noreply", line.join(" ")));
            }
        }
    }
    for i in 0..plain.len() {
        let mut line = plain.clone();
        line.remove(i);
        lines.push(line.join(" "));
    }
    lines.push(format!("{} extra", plain.join(" ")));
    lines.push(format!("{} extra more", plain.join(" ")));
    for i in 1..=plain.len() {
        let mut line = plain.clone();
        line.insert(i, "noreply".into());
        lines.push(line.join(" "));
    }
    lines.push(plain.join(" ").to_uppercase());
    lines.push(format!("  {}", plain.join("   ")));
    lines.push(format!("{} ", plain.join(" ")));
    lines.push(plain.join("\t"));
    lines
}

/// One case: a fresh item `k` holding `1`, the line (with a 2-byte data
/// block after storage commands), then `get k` to show what it did.
fn case(line: &str) -> Vec<u8> {
    let mut bytes = b"flush_all\r\nset k 0 0 1\r\n1\r\n".to_vec();
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    let command = line.split_whitespace().next().unwrap_or("");
    if is_storage(&command.to_ascii_lowercase()) {
        bytes.extend_from_slice(b"ab\r\n");
    }
    bytes.extend_from_slice(b"get k\r\nquit\r\n");
    bytes
}

/// Replies with what differs by design blanked: the version string and CAS
/// ids (Keyway's are its own).
fn normalized(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with("VERSION ") {
                return "VERSION <version>\r\n".to_string();
            }
            let tokens: Vec<&str> = line.trim_end().split(' ').collect();
            if tokens.first() == Some(&"VALUE") && tokens.len() == 5 {
                return format!(
                    "{} {} {} {} <cas>\r\n",
                    tokens[0], tokens[1], tokens[2], tokens[3]
                );
            }
            line.to_string()
        })
        .collect()
}

/// Lines Keyway answers differently on purpose, with why.
const KNOWN: &[(&str, &str)] = &[(
    "stats items extra",
    "item figures per slab class are Keyway's own: it has no slab classes",
)];

#[tokio::test(flavor = "multi_thread")]
async fn memcached_text_lines_get_memcacheds_own_replies() {
    let memcached = start_memcached();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let keyway_addr = keyway.memcache_addr.unwrap();
    let mut lines: Vec<String> = TEMPLATES.iter().flat_map(|t| variants(t)).collect();
    lines.extend(
        [
            "",
            " ",
            "bogus",
            "GET k",
            "get",
            "gat",
            "gat 10",
            "version foo bar",
            "stats nonsense",
            "stats reset",
            "stats detail dump",
            "stats detail on",
            "stats detail off",
            "stats items extra",
            "cache_memlimit 100",
            "cache_memlimit",
            "cache_memlimit x",
            "shutdown",
            "flush_all noreply extra",
            "flush_all -1",
            "verbosity",
            "quit extra",
            "mn",
        ]
        .map(String::from),
    );
    lines.sort();
    lines.dedup();
    let mut differences = Vec::new();
    for line in &lines {
        let request = case(line);
        let want = normalized(&exchange(memcached.addr, &request).await);
        let got = normalized(&exchange(keyway_addr, &request).await);
        if got != want && !KNOWN.iter().any(|(known, _)| known == line) {
            differences.push(format!(
                "{line:?}\n  memcached: {}\n  keyway:    {}",
                show(want.as_bytes()),
                show(got.as_bytes())
            ));
        }
    }
    println!("{} lines compared", lines.len());
    assert!(
        differences.is_empty(),
        "{} of {} lines answered differently:\n{}",
        differences.len(),
        lines.len(),
        differences.join("\n")
    );
}
