//! The connection commands with options, typed: HELLO and CLIENT.

use bytes::Bytes;
use keyway_protocol::resp::{Reply, Version};

use super::super::{parse_i64, syntax_error, wrong_arity};
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
            b"UNBLOCK" if args.len() == 3 || args.len() == 4 => {
                parse_i64(&args[2])?;
                let reason = args.get(3);
                if reason.is_some_and(|r| {
                    !r.eq_ignore_ascii_case(b"timeout") && !r.eq_ignore_ascii_case(b"error")
                }) {
                    return Err(Reply::error(
                        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                    ));
                }
                Client::Unblock
            }
            b"UNBLOCK" => return Err(wrong_arity("client|unblock")),
            _ => return Err(unknown_subcommand(&args[1], "CLIENT")),
        })
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
