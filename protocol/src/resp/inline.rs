//! Inline commands (what telnet and `redis-cli` send unframed), split into
//! arguments as redis's `sdssplitargs` splits them, as a nom grammar:
//!
//! ```text
//! line    = { space } { arg { space } }
//! arg     = [ bare ] [ double | single ]      (at least one of the two)
//! bare    = 1*( any but space, '"', "'" )
//! double  = '"' { "\x" hex hex | "\" any | 1*( any but '\' '"' ) } '"' &( space | end )
//! single  = "'" { "\'" | 1*( any but '\' "'" ) | "\" } "'" &( space | end )
//! ```
//!
//! A quote may open in the middle of an argument (`a"b c"` is `ab c`), as in
//! redis. In double quotes `\n \r \t \b \a` are control characters and
//! `\x41` a hex byte; any other escaped character stands for itself. In single
//! quotes only `\'` is an escape. A quote left open, or a closing quote
//! followed by anything but a space, is redis's "unbalanced quotes" error.

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, take, take_till1, take_while, take_while_m_n};
use nom::combinator::{cut, eof, map, map_opt, opt, peek, value, verify};
use nom::multi::fold_many0;
use nom::sequence::{pair, preceded, terminated};
use nom::{IResult, Offset};

use super::request::{DecodeError, Span};

type Result<'a, T> = IResult<&'a [u8], T>;

fn is_space(byte: u8) -> bool {
    byte.is_ascii_whitespace()
}

fn spaces(input: &[u8]) -> Result<'_, &[u8]> {
    take_while(is_space)(input)
}

/// What follows a closing quote: a space or the end of the line.
fn quote_end(input: &[u8]) -> Result<'_, ()> {
    value((), peek(alt((eof, take_while_m_n(1, 1, is_space)))))(input)
}

/// A piece of a quoted argument: some bytes as they are, or one escaped byte.
enum Piece<'a> {
    Run(&'a [u8]),
    Byte(u8),
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    // Two hex digits, no sign: `\x+1` is an escaped `x` and then `+1`.
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

fn escaped(byte: &[u8]) -> u8 {
    match byte[0] {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

fn double_piece(input: &[u8]) -> Result<'_, Piece<'_>> {
    alt((
        map(
            preceded(tag("\\x"), map_opt(take(2usize), hex_byte)),
            Piece::Byte,
        ),
        map(preceded(tag("\\"), take(1usize)), |byte| {
            Piece::Byte(escaped(byte))
        }),
        map(is_not("\\\""), Piece::Run),
    ))(input)
}

fn single_piece(input: &[u8]) -> Result<'_, Piece<'_>> {
    alt((
        map(tag("\\'"), |_| Piece::Byte(b'\'')),
        map(is_not("\\'"), Piece::Run),
        map(tag("\\"), Piece::Run),
    ))(input)
}

/// The bytes between `quote`s, unescaped by `piece`. Once the quote has
/// opened, failing to close it is an error, not another way to read the
/// argument (`cut`).
fn quoted<'a>(
    quote: &'static str,
    piece: fn(&'a [u8]) -> Result<'a, Piece<'a>>,
) -> impl FnMut(&'a [u8]) -> Result<'a, Vec<u8>> {
    preceded(
        tag(quote),
        cut(terminated(
            fold_many0(piece, Vec::new, |mut out, piece| {
                match piece {
                    Piece::Run(run) => out.extend_from_slice(run),
                    Piece::Byte(byte) => out.push(byte),
                }
                out
            }),
            terminated(tag(quote), quote_end),
        )),
    )
}

fn bare(input: &[u8]) -> Result<'_, &[u8]> {
    take_till1(|byte| is_space(byte) || byte == b'"' || byte == b'\'')(input)
}

/// One argument of `line` at `input`: a slice of the line when it has no
/// quotes, its bytes unescaped otherwise.
fn arg<'a>(line: &'a [u8], input: &'a [u8]) -> Result<'a, Span> {
    let quoted_part = alt((quoted("\"", double_piece), quoted("'", single_piece)));
    let (rest, (bare, quoted)) = verify(pair(opt(bare), opt(quoted_part)), |(bare, quoted)| {
        bare.is_some() || quoted.is_some()
    })(input)?;
    let span = match (bare, quoted) {
        (Some(bare), None) => {
            let start = line.offset(bare);
            Span::Slice(start, start + bare.len())
        }
        (bare, quoted) => {
            let mut out = bare.unwrap_or_default().to_vec();
            out.extend(quoted.unwrap_or_default());
            Span::Owned(out)
        }
    };
    Ok((rest, span))
}

/// Splits one inline command line (without its line ending). Not inlined:
/// the multibulk path, which every client library takes, shares its caller.
#[inline(never)]
pub(super) fn split(line: &[u8]) -> std::result::Result<Vec<Span>, DecodeError> {
    if let Some(spans) = words(line) {
        return Ok(spans);
    }
    let args = fold_many0(
        preceded(spaces, |input| arg(line, input)),
        Vec::new,
        |mut spans, span| {
            spans.push(span);
            spans
        },
    );
    // The only way a line fails to split is a quote left open or closed
    // against what follows it.
    terminated(args, preceded(spaces, eof))(line)
        .map(|(_, spans)| spans)
        .map_err(|_: nom::Err<nom::error::Error<&[u8]>>| DecodeError::UnbalancedQuotes)
}

/// A line without quotes: its arguments are the runs between spaces, all of
/// them slices of the line. `None` at the first quote.
fn words(line: &[u8]) -> Option<Vec<Span>> {
    let word = preceded(spaces, bare);
    let words = fold_many0(word, Vec::new, |mut spans, word: &[u8]| {
        let start = line.offset(word);
        spans.push(Span::Slice(start, start + word.len()));
        spans
    });
    terminated(words, preceded(spaces, eof))(line)
        .ok()
        .map(|(_, spans)| spans)
}
