//! The connection commands with options, typed: HELLO and CLIENT.

use bytes::Bytes;
use keyway_protocol::resp::{Reply, Version};

use super::super::{parse_i64, syntax_error, wrong_arity, Replies};
use super::unknown_subcommand;

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
/// redis reads the options in order and runs each AUTH as it meets it, so
/// a bad option after an AUTH leaves the client authenticated: the
/// options up to the first bad one are kept, and the bad one's error is
/// answered after their AUTHs.
#[derive(Debug, PartialEq)]
pub(in crate::frontend::resp) struct Hello {
    pub version: Option<Version>,
    /// (user, password), in the order given.
    pub auths: Vec<(Bytes, Bytes)>,
    pub name: Option<Bytes>,
    /// The first bad option's error.
    pub malformed: Option<Reply>,
}

impl Hello {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let version = match args.get(1) {
            None => None,
            Some(protover) => match parse_i64(protover) {
                Ok(2) => Some(Version::Resp2),
                Ok(3) => Some(Version::Resp3),
                Ok(_) => return Err(Reply::error("NOPROTO unsupported protocol version")),
                Err(_) => {
                    return Err(Reply::error(
                        "ERR Protocol version is not an integer or out of range",
                    ))
                }
            },
        };
        let mut hello = Hello {
            version,
            auths: Vec::new(),
            name: None,
            malformed: None,
        };
        let mut i = 2;
        while i < args.len() {
            match args[i].to_ascii_uppercase().as_slice() {
                b"AUTH" if i + 2 < args.len() => {
                    hello.auths.push((args[i + 1].clone(), args[i + 2].clone()));
                    i += 3;
                }
                b"SETNAME" if i + 1 < args.len() => match client_name(&args[i + 1]) {
                    Ok(name) => {
                        hello.name = Some(name);
                        i += 2;
                    }
                    Err(error) => {
                        hello.malformed = Some(error);
                        break;
                    }
                },
                _ => {
                    hello.malformed = Some(Reply::error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&args[i])
                    )));
                    break;
                }
            }
        }
        Ok(hello)
    }
}

/// The CLIENT subcommands Keyway runs.
#[derive(Debug, PartialEq)]
pub(in crate::frontend::resp) enum Client {
    SetLibName(Bytes),
    SetLibVersion(Bytes),
    /// An empty name clears it.
    SetName(Bytes),
    GetName,
    Id,
    Info,
    /// NO-EVICT on|off: accepted (Keyway never evicts a client).
    NoEvict,
    /// GETREDIR: -1, as tracking is never on.
    GetRedirect,
    TrackingInfo,
    /// UNBLOCK id [TIMEOUT|ERROR]: 0, no client is ever blocked.
    Unblock,
    /// LIST [TYPE type] [ID id ...]: `normal` is every client (no other
    /// kind connects to Keyway); `ids` empty: any.
    List {
        normal: bool,
        ids: Vec<u64>,
    },
    Kill(Kill),
    /// PAUSE timeout [WRITE|ALL], in milliseconds.
    Pause {
        ms: u64,
        all: bool,
    },
    Unpause,
    Reply(Replies),
}

/// Which clients CLIENT KILL ends.
#[derive(Debug, PartialEq, Default)]
pub(in crate::frontend::resp) struct Kill {
    /// The old form, `CLIENT KILL addr`: OK or an error, the asker included.
    pub legacy: bool,
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<Bytes>,
    /// TYPE other than `normal`: no client matches.
    pub none: bool,
    pub max_age: Option<u64>,
    /// SKIPME yes (the default): not the client asking.
    pub keep_me: bool,
}

impl Kill {
    fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        if args.len() == 3 {
            return Ok(Kill {
                legacy: true,
                addr: Some(String::from_utf8_lossy(&args[2]).into_owned()),
                ..Kill::default()
            });
        }
        if args.len() % 2 != 0 {
            return Err(syntax_error());
        }
        let mut kill = Kill {
            keep_me: true,
            ..Kill::default()
        };
        for pair in args[2..].chunks(2) {
            let text = || String::from_utf8_lossy(&pair[1]).into_owned();
            match pair[0].to_ascii_uppercase().as_slice() {
                b"ID" => {
                    let id = parse_i64(&pair[1])
                        .ok()
                        .filter(|&id| id > 0)
                        .ok_or_else(|| Reply::error("ERR client-id should be greater than 0"))?;
                    kill.id = Some(id as u64);
                }
                b"ADDR" => kill.addr = Some(text()),
                b"LADDR" => kill.laddr = Some(text()),
                b"USER" => kill.user = Some(pair[1].clone()),
                b"TYPE" => kill.none |= !client_type(&pair[1])?,
                b"MAXAGE" => kill.max_age = Some(parse_i64(&pair[1])?.max(0) as u64),
                b"SKIPME" => {
                    kill.keep_me = match pair[1].to_ascii_lowercase().as_slice() {
                        b"yes" => true,
                        b"no" => false,
                        _ => return Err(syntax_error()),
                    }
                }
                _ => return Err(syntax_error()),
            }
        }
        Ok(kill)
    }
}

/// A CLIENT LIST/KILL TYPE: whether it is `normal` (every Keyway client);
/// redis's error for a type it does not know.
fn client_type(kind: &Bytes) -> Result<bool, Reply> {
    match kind.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(true),
        b"master" | b"replica" | b"slave" | b"pubsub" => Ok(false),
        _ => Err(Reply::error(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(kind)
        ))),
    }
}

/// CLIENT LIST's options.
fn client_list(args: &[Bytes]) -> Result<Client, Reply> {
    let (mut normal, mut ids) = (true, Vec::new());
    let mut at = 2;
    while at < args.len() {
        match args[at].to_ascii_uppercase().as_slice() {
            b"TYPE" if at + 1 < args.len() => {
                normal = client_type(&args[at + 1])?;
                at += 2;
            }
            b"ID" if at + 1 < args.len() => {
                for id in &args[at + 1..] {
                    let id = parse_i64(id)
                        .ok()
                        .filter(|&id| id > 0)
                        .ok_or_else(|| Reply::error("ERR Invalid client ID"))?;
                    ids.push(id as u64);
                }
                at = args.len();
            }
            _ => return Err(syntax_error()),
        }
    }
    Ok(Client::List { normal, ids })
}

impl Client {
    pub fn parse(args: &[Bytes]) -> Result<Self, Reply> {
        let arity = |n: usize, name: &str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(wrong_arity(name))
            }
        };
        Ok(match args[1].to_ascii_uppercase().as_slice() {
            b"SETINFO" => {
                arity(4, "client|setinfo")?;
                match args[2].to_ascii_uppercase().as_slice() {
                    b"LIB-NAME" => Client::SetLibName(client_name(&args[3])?),
                    b"LIB-VER" => Client::SetLibVersion(client_name(&args[3])?),
                    _ => {
                        return Err(Reply::error(format!(
                            "ERR Unrecognized option '{}'",
                            String::from_utf8_lossy(&args[2])
                        )))
                    }
                }
            }
            b"SETNAME" => {
                arity(3, "client|setname")?;
                Client::SetName(client_name(&args[2])?)
            }
            b"GETNAME" => arity(2, "client|getname").map(|()| Client::GetName)?,
            b"ID" => arity(2, "client|id").map(|()| Client::Id)?,
            b"INFO" => arity(2, "client|info").map(|()| Client::Info)?,
            b"NO-EVICT" => {
                arity(3, "client|no-evict")?;
                if !args[2].eq_ignore_ascii_case(b"on") && !args[2].eq_ignore_ascii_case(b"off") {
                    return Err(syntax_error());
                }
                Client::NoEvict
            }
            b"GETREDIR" => arity(2, "client|getredir").map(|()| Client::GetRedirect)?,
            b"TRACKINGINFO" => arity(2, "client|trackinginfo").map(|()| Client::TrackingInfo)?,
            b"UNBLOCK" => Client::unblock(args)?,
            b"LIST" => client_list(args)?,
            b"KILL" if args.len() >= 3 => Client::Kill(Kill::parse(args)?),
            b"KILL" => return Err(wrong_arity("client|kill")),
            b"PAUSE" => Client::pause(args)?,
            b"UNPAUSE" => arity(2, "client|unpause").map(|()| Client::Unpause)?,
            b"REPLY" => Client::reply(args)?,
            _ => return Err(unknown_subcommand(&args[1], "CLIENT")),
        })
    }
}

impl Client {
    /// UNBLOCK id [TIMEOUT|ERROR].
    fn unblock(args: &[Bytes]) -> Result<Self, Reply> {
        if args.len() != 3 && args.len() != 4 {
            return Err(wrong_arity("client|unblock"));
        }
        parse_i64(&args[2])?;
        let reason = args.get(3);
        if reason.is_some_and(|r| {
            !r.eq_ignore_ascii_case(b"timeout") && !r.eq_ignore_ascii_case(b"error")
        }) {
            return Err(Reply::error(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
        Ok(Client::Unblock)
    }

    /// PAUSE timeout [WRITE|ALL].
    fn pause(args: &[Bytes]) -> Result<Self, Reply> {
        if args.len() != 3 && args.len() != 4 {
            return Err(wrong_arity("client|pause"));
        }
        let ms = parse_i64(&args[2])
            .map_err(|_| Reply::error("ERR timeout is not an integer or out of range"))?;
        if ms < 0 {
            return Err(Reply::error("ERR timeout is negative"));
        }
        let all = match args.get(3).map(|m| m.to_ascii_uppercase()) {
            None => true,
            Some(mode) if mode == b"ALL" => true,
            Some(mode) if mode == b"WRITE" => false,
            Some(_) => return Err(syntax_error()),
        };
        Ok(Client::Pause { ms: ms as u64, all })
    }

    /// REPLY ON|OFF|SKIP.
    fn reply(args: &[Bytes]) -> Result<Self, Reply> {
        if args.len() != 3 {
            return Err(wrong_arity("client|reply"));
        }
        Ok(Client::Reply(
            match args[2].to_ascii_uppercase().as_slice() {
                b"ON" => Replies::On,
                b"OFF" => Replies::Off,
                b"SKIP" => Replies::Skip,
                _ => return Err(syntax_error()),
            },
        ))
    }
}

/// A client (or library) name: printable ASCII without spaces, as redis
/// requires.
fn client_name(name: &Bytes) -> Result<Bytes, Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn error_of<T: std::fmt::Debug>(parsed: Result<T, Reply>) -> String {
        match parsed.expect_err("an error reply") {
            Reply::Error(text) => text.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hello_keeps_the_options_before_the_first_bad_one() {
        let hello = Hello::parse(&args("HELLO 3 SETNAME me AUTH u p")).unwrap();
        assert_eq!(hello.version, Some(Version::Resp3));
        assert_eq!(hello.auths, [(Bytes::from("u"), Bytes::from("p"))]);
        assert_eq!(hello.name, Some(Bytes::from("me")));
        assert_eq!(hello.malformed, None);
        let bad = Hello::parse(&args("HELLO 3 AUTH u p FOO AUTH v q")).unwrap();
        assert_eq!(bad.auths.len(), 1);
        assert_eq!(
            bad.malformed,
            Some(Reply::error("ERR Syntax error in HELLO option 'FOO'"))
        );
        assert_eq!(
            error_of(Hello::parse(&args("HELLO 4"))),
            "NOPROTO unsupported protocol version"
        );
    }
}
