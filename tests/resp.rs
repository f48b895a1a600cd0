//! The RESP frontend against a real redis-server: the same request bytes must
//! give the same reply bytes (RESP2 and RESP3), plus redis-cli and telnet-style
//! inline use.

mod common;

use std::process::Command;

use common::{after_hello, exchange, show, start_keyway, start_redis, ONE_MEMORY_ROUTE};

/// Inline scripts (as telnet sends them) whose replies carry nothing run-specific.
const SCRIPTS: &[&str] = &[
    "PING\r\nPING hello\r\nECHO \"a b\"\r\nping\r\n",
    "SET k v\r\nGET k\r\nGET missing\r\nSET k v2 GET\r\nSET k v3 NX\r\nSET k2 v XX\r\nSET k2 v NX GET\r\nGET k2\r\nSET k2 w NX GET\r\nGET k2\r\nSET k3 v XX GET\r\nGET k3\r\n",
    "SET k v EX 100\r\nTTL k\r\nSET k v KEEPTTL\r\nTTL k\r\nSET k v\r\nTTL k\r\nTTL nope\r\nPTTL nope\r\n",
    "SET k v EX 0\r\nSET k v EX -5\r\nSET k v EX x\r\nSET k v PX\r\nSET k v NX XX\r\nSET k v EX 10 PX 10\r\nSET k v BOGUS\r\n",
    "SETNX a 1\r\nSETNX a 2\r\nGET a\r\nSETEX b 100 x\r\nSETEX b 0 x\r\nPSETEX c 100000 y\r\nGETDEL a\r\nGETDEL a\r\n",
    "MSET a 1 b 2 c 3\r\nMGET a nope b c\r\nMSET a\r\nMSETNX a 9 z 9\r\nMSETNX y 1 z 2\r\nMGET y z\r\n",
    "INCR n\r\nINCRBY n 10\r\nDECR n\r\nDECRBY n 5\r\nINCRBY n x\r\nSET s abc\r\nINCR s\r\nSET m 9223372036854775807\r\nINCR m\r\nDECRBY n -9223372036854775808\r\n",
    "APPEND a hello\r\nAPPEND a world\r\nGET a\r\nSTRLEN a\r\nSTRLEN nope\r\nTYPE a\r\nTYPE nope\r\n",
    "MSET a 1 b 2\r\nDEL a b c\r\nUNLINK a\r\nSET a 1\r\nEXISTS a a nope\r\n",
    "SET k v\r\nEXPIRE k 100\r\nTTL k\r\nEXPIRE k 50 GT\r\nEXPIRE k 500 GT\r\nEXPIRE k 50 NX\r\nPERSIST k\r\nPERSIST k\r\nTTL k\r\nEXPIRE k 10 XX\r\nEXPIRE k 10 LT\r\nTTL k\r\n",
    "SET k v\r\nEXPIRE k 10 NX XX\r\nEXPIRE k 10 GT LT\r\nEXPIRE k 10 FOO\r\nEXPIRE k x\r\nEXPIRE nope 10\r\nPEXPIRE k 100000\r\nEXPIRE k 0\r\nGET k\r\n",
    "SET k v\r\nEXPIREAT k 1\r\nGET k\r\nSET k v\r\nPEXPIREAT k 99999999999999\r\nTTL k\r\n",
    "SET k v\r\nGETEX k\r\nGETEX k EX 100\r\nTTL k\r\nGETEX k PERSIST\r\nTTL k\r\nGETEX k EX 0\r\nGETEX k FOO\r\nGETEX nope\r\n",
    "MSET a 1 b 2 c 3\r\nDBSIZE\r\nSELECT 1\r\nDBSIZE\r\nGET a\r\nSET a x\r\nSELECT 0\r\nGET a\r\nSELECT 16\r\nSELECT x\r\nFLUSHDB\r\nDBSIZE\r\nSELECT 1\r\nGET a\r\nFLUSHALL\r\nGET a\r\n",
    "MULTI\r\nSET a 1\r\nINCR a\r\nGET a\r\nEXEC\r\nEXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nDISCARD\r\nGET a\r\n",
    "MULTI\r\nSET a 2\r\nNOSUCHCOMMAND x\r\nGET\r\nEXEC\r\nGET a\r\n",
    "GET\r\nSET a\r\nNOSUCH a b\r\nnosuch\r\nGET a b\r\nCLIENT NOSUCH\r\nCLIENT SETNAME \"a b\"\r\nCLIENT SETNAME x\r\nCLIENT GETNAME\r\n",
    "AUTH x\r\nAUTH default x\r\nAUTH bob x\r\n",
    "HELLO 4\r\nHELLO x\r\nHELLO 2 FOO\r\nEVALSHA 0000000000000000000000000000000000000000 0\r\n",
    "SET a 1\r\nKEYS *\r\nKEYS nomatch*\r\nSCAN x\r\nSCAN 0 COUNT 0\r\nSCAN 0 MATCH\r\n",
    "SET a 1\r\nRENAME a a\r\nRENAMENX a a\r\nRENAME nope x\r\nRENAMENX nope x\r\nCOPY a a\r\nCOPY nope b\r\nCOPY a b\r\nCOPY a b\r\nCOPY a b REPLACE\r\nCOPY a b DB 20\r\nCOPY a b DB x\r\nCOPY a b FOO\r\nMOVE a 0\r\nMOVE a 16\r\nMOVE a x\r\nMOVE nope 1\r\nMOVE a 1\r\nGET a\r\nSELECT 1\r\nGET a\r\nSELECT 0\r\n",
    "SET a v\r\nEXPIRE a 100\r\nRENAME a b\r\nGET a\r\nGET b\r\nTTL b\r\nSET c w\r\nRENAMENX b c\r\nRENAMENX b d\r\nGET d\r\nOBJECT ENCODING d\r\nOBJECT ENCODING nope\r\nSET i 123\r\nOBJECT ENCODING i\r\nSET z 012\r\nOBJECT ENCODING z\r\nOBJECT IDLETIME z\r\nOBJECT FREQ z\r\nOBJECT ENCODING\r\nOBJECT\r\nOBJECT FOO s\r\nRENAME\r\n",
    "SELECT 1\r\nSET k v\r\nCLIENT SETNAME me\r\nMULTI\r\nSET k w\r\nRESET\r\nGET k\r\nCLIENT GETNAME\r\nEXEC\r\nRESET x\r\n",
    "CLIENT NO-EVICT on\r\nCLIENT NO-EVICT x\r\nCLIENT NO-EVICT\r\nCLIENT GETREDIR\r\nCLIENT TRACKINGINFO\r\nCLIENT UNBLOCK 999\r\nCLIENT UNBLOCK 9 ERROR\r\nCLIENT UNBLOCK x\r\nCLIENT UNBLOCK 1 FOO\r\n",
    "ROLE\r\nROLE x\r\nLASTSAVE x\r\nCONFIG\r\nCONFIG GET\r\nCONFIG FOO\r\nCONFIG GET databases\r\nCONFIG GET nonexistent\r\nCONFIG GET DATA*\r\nCONFIG GET save\r\nCONFIG GET appendonly\r\nCONFIG GET cluster-enabled\r\n",
];

fn with_quit(script: &str, prefix: &str) -> Vec<u8> {
    format!("{prefix}FLUSHALL\r\n{script}QUIT\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_match_real_redis_byte_for_byte() {
    let redis = start_redis();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    for prefix in ["", "HELLO 3\r\n"] {
        for script in SCRIPTS {
            let request = with_quit(script, prefix);
            let want = exchange(redis.addr, &request).await;
            let got = exchange(keyway.resp_addr.unwrap(), &request).await;
            if prefix.is_empty() {
                assert_eq!(show(&got), show(&want), "RESP2 script:\n{script}");
            } else {
                // The HELLO reply carries the server's version and client id; compare after it.
                let (got, want) = (after_hello(&got), after_hello(&want));
                assert_eq!(show(got), show(want), "RESP3 script:\n{script}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_3_answers_a_map_and_nulls_become_underscore() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let reply = exchange(
        keyway.resp_addr.unwrap(),
        b"HELLO 3\r\nGET nope\r\nQUIT\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(
        text.ends_with("$7\r\nmodules\r\n*0\r\n_\r\n+OK\r\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_errors_reply_then_close_and_the_process_lives_on() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.resp_addr.unwrap();
    assert_eq!(
        exchange(addr, b"*1\r\n+OK\r\n").await,
        b"-ERR Protocol error: expected '$', got '+'\r\n"
    );
    assert_eq!(
        exchange(addr, b"*x\r\n").await,
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert_eq!(
        exchange(addr, b"SET \"a\r\n").await,
        b"-ERR Protocol error: unbalanced quotes in request\r\n"
    );
    let bomb = b"*1\r\n".repeat(10_000);
    assert_eq!(
        exchange(addr, &bomb).await,
        b"-ERR Protocol error: expected '$', got '*'\r\n"
    );
    assert_eq!(
        exchange(addr, b"PING\r\nQUIT\r\n").await,
        b"+PONG\r\n+OK\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_keys_and_values_round_trip() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let key = "key with spaces and \u{6e05}".as_bytes();
    let long_key = vec![b'k'; 256];
    let value = b"\r\nEND\r\n\0\xff";
    let mut request = Vec::new();
    for k in [key, &long_key[..]] {
        request.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n", k.len()).as_bytes());
        request.extend_from_slice(k);
        request.extend_from_slice(format!("\r\n${}\r\n", value.len()).as_bytes());
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n", k.len()).as_bytes());
        request.extend_from_slice(k);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"QUIT\r\n");
    let reply = exchange(keyway.resp_addr.unwrap(), &request).await;
    let one = b"+OK\r\n$9\r\n\r\nEND\r\n\0\xff\r\n";
    assert_eq!(reply, [&one[..], &one[..], b"+OK\r\n"].concat());
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs; install it with: apt-get install -y redis-tools");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cli_works() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let port = keyway.resp_addr.unwrap().port();
    tokio::task::spawn_blocking(move || {
        assert_eq!(redis_cli(port, &["PING"]), "PONG\n");
        assert_eq!(redis_cli(port, &["SET", "greeting", "hello world"]), "OK\n");
        assert_eq!(redis_cli(port, &["GET", "greeting"]), "hello world\n");
        assert_eq!(redis_cli(port, &["-3", "GET", "nope"]), "\n");
        assert_eq!(redis_cli(port, &["INCRBY", "counter", "5"]), "5\n");
        assert_eq!(redis_cli(port, &["KEYS", "g*"]), "greeting\n");
        assert!(redis_cli(port, &["INFO", "server"]).contains("redis_version:7.0.15"));
        assert!(redis_cli(port, &["INFO", "keyspace"]).contains("db0:keys=2"));
        // The sections monitoring tools read, with every redis 7 field name
        // they look for.
        let cpu = redis_cli(port, &["INFO", "cpu"]);
        assert!(cpu.starts_with("# CPU\r\nused_cpu_sys:"), "{cpu}");
        assert!(cpu.contains("used_cpu_user:"), "{cpu}");
        let replication = redis_cli(port, &["INFO", "replication"]);
        assert!(
            replication.contains("role:master\r\nconnected_slaves:0\r\n"),
            "{replication}"
        );
        assert!(redis_cli(port, &["INFO", "persistence"]).contains("rdb_last_save_time:"));
        assert_eq!(redis_cli(port, &["ROLE"]), "master\n0\n\n");
        // Per command and per error code, as redis 7 writes them.
        assert!(redis_cli(port, &["NOSUCHCOMMAND"]).starts_with("ERR unknown command"));
        assert!(redis_cli(port, &["GET"]).starts_with("ERR wrong number"));
        // (The figures are the process's: other tests' Keyways count too.)
        let figure = |text: &str, line: &str, field: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(line)).expect(line);
            let field = line.split([':', ',']).find_map(|f| f.strip_prefix(field));
            field.expect(line).parse().unwrap()
        };
        // TIME is sent by no other test of this binary: its counts are exact.
        for args in [&["TIME"][..], &["TIME"], &["TIME", "x"], &["TIME"]] {
            redis_cli(port, args);
        }
        let commands = redis_cli(port, &["INFO", "commandstats"]);
        let time = commands
            .lines()
            .find(|l| l.starts_with("cmdstat_time:"))
            .unwrap_or_else(|| panic!("{commands}"));
        assert!(time.starts_with("cmdstat_time:calls=3,usec="), "{time}");
        assert!(time.ends_with(",rejected_calls=1,failed_calls=0"), "{time}");
        assert!(
            figure(&commands, "cmdstat_get:", "rejected_calls=") >= 1,
            "{commands}"
        );
        let errors = redis_cli(port, &["INFO", "errorstats"]);
        assert!(figure(&errors, "errorstat_ERR:", "count=") >= 2, "{errors}");
        assert!(!redis_cli(port, &["INFO"]).contains("# Commandstats"));
        assert!(redis_cli(port, &["INFO", "all"]).contains("# Commandstats"));
        assert_eq!(
            redis_cli(port, &["CONFIG", "GET", "databases"]),
            "databases\n16\n"
        );
        let all = redis_cli(port, &["INFO"]);
        let sections: Vec<&str> = all.lines().filter(|l| l.starts_with("# ")).collect();
        assert_eq!(
            sections,
            [
                "# Server",
                "# Clients",
                "# Memory",
                "# Persistence",
                "# Stats",
                "# Replication",
                "# CPU",
                "# Modules",
                "# Errorstats",
                "# Cluster",
                "# Keyway",
                "# Keyspace"
            ],
            "{all}"
        );
        // Interactive mode: commands typed on stdin, as a person would.
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"SET typed yes\nGET typed\nDBSIZE\n")
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "OK\nyes\n3\n");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_visits_every_key_exactly_once() {
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let addr = keyway.resp_addr.unwrap();
    let mut request = Vec::new();
    for i in 0..1000 {
        request.extend_from_slice(format!("SET key:{i} v\r\n").as_bytes());
    }
    request.extend_from_slice(b"QUIT\r\n");
    exchange(addr, &request).await;
    let port = addr.port();
    let keys = tokio::task::spawn_blocking(move || {
        let mut keys = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let out = redis_cli(port, &["SCAN", &cursor, "MATCH", "key:*", "COUNT", "37"]);
            let mut lines = out.lines();
            cursor = lines.next().unwrap().to_string();
            keys.extend(lines.map(String::from).filter(|l| !l.is_empty()));
            if cursor == "0" {
                return keys;
            }
        }
    })
    .await
    .unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys.len(), 1000);
    assert_eq!(sorted.len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_setinfo_and_info_report_what_the_client_said() {
    // redis 7.2's CLIENT SETINFO, which redis-py 8 sends on connect.
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let request = b"CLIENT SETINFO LIB-NAME redis-py\r\nCLIENT SETINFO LIB-VER 8.1.0\r\nCLIENT SETINFO FOO x\r\n\
                    CLIENT MAINT_NOTIFICATIONS ON\r\nCLIENT SETNAME web1\r\nSELECT 3\r\nCLIENT INFO\r\nQUIT\r\n";
    let reply = String::from_utf8(exchange(keyway.resp_addr.unwrap(), request).await).unwrap();
    assert!(
        reply.starts_with(
            "+OK\r\n+OK\r\n-ERR Unrecognized option 'FOO'\r\n\
             -ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n+OK\r\n+OK\r\n$"
        ),
        "{reply}"
    );
    assert!(reply.contains(" name=web1 "), "{reply}");
    assert!(reply.contains(" db=3 "), "{reply}");
    assert!(
        reply.contains(" lib-name=redis-py lib-ver=8.1.0\n"),
        "{reply}"
    );
}

/// The sections and fields of `INFO everything` on a fresh redis-server.
fn info_fields(
    info: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut sections = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in info.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            current = title.to_string();
            sections
                .entry(current.clone())
                .or_insert_with(Default::default);
        } else if let Some((field, _)) = line.split_once(':') {
            sections
                .entry(current.clone())
                .or_insert_with(std::collections::BTreeSet::new)
                .insert(field.to_string());
        }
    }
    sections
}

#[tokio::test(flavor = "multi_thread")]
async fn info_has_every_section_and_field_redis_7_has() {
    let redis = start_redis();
    let keyway = start_keyway(ONE_MEMORY_ROUTE).await;
    let want = info_fields(&redis_cli(redis.addr.port(), &["info", "everything"]));
    let got = info_fields(&redis_cli(
        keyway.resp_addr.unwrap().port(),
        &["info", "everything"],
    ));
    assert!(want.contains_key("Server") && want["Server"].contains("arch_bits"));
    for (section, fields) in &want {
        // Per-command and per-error figures exist once such commands ran.
        if matches!(
            section.as_str(),
            "Commandstats" | "Errorstats" | "Latencystats" | "Keyspace"
        ) {
            continue;
        }
        let ours = got.get(section).unwrap_or_else(|| panic!("no # {section}"));
        let missing: Vec<&String> = fields.difference(ours).collect();
        assert!(missing.is_empty(), "{section} lacks {missing:?}");
    }
}
