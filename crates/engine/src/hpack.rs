//! HPACK (RFC 7541) for throng's own HTTP/2 client: a decoder for the
//! header blocks a server sends, and the encoding of a prepared request.
//!
//! By hand because the hot path wants what no HPACK crate offers: a
//! response's fields walked in place, each string left as sent
//! (Huffman-coded or not) until someone asks for it. A load test reads
//! `:status` from every response and other headers only when a check, an
//! extract or the cookie jar wants them; the h2 crate decoded every
//! header into a `HeaderMap` (Huffman decoding, hashing and allocation:
//! ~9% of the CPU of a request against nginx, bench/README.md (j)).
//! Strings the dynamic table keeps are decoded when inserted (the table's
//! size counts decoded octets), into buffers of evicted entries. Huffman
//! codes are decoded a nibble at a time from a table built once. Every
//! bound is checked: a block is hostile until parsed.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block could not be decoded: a connection error
/// (COMPRESSION_ERROR), since the decoder's state is then unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HpackError {
    /// The block ended inside a field.
    Truncated,
    /// An integer over 2^28, or an index past both tables.
    BadIndex,
    /// Invalid Huffman coding (EOS inside, padding over 7 bits or not ones).
    BadHuffman,
    /// A table size update over what we allowed, or not at a block's start.
    BadSizeUpdate,
    /// The decoded header list is over its cap.
    TooLarge,
}

/// RFC 7541 Appendix A: the static table (1-based).
pub(crate) const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 Appendix B: the Huffman code's length in bits for each octet
/// (EOS, symbol 256, is 30 ones). The code is canonical, so the codes
/// follow from the lengths ([`codes`]).
const HUFFMAN_BITS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// The canonical codes of [`HUFFMAN_BITS`]: shorter codes first, then in
/// symbol order within a length.
fn codes() -> [u32; 256] {
    let mut order: Vec<usize> = (0..256).collect();
    order.sort_by_key(|&s| (HUFFMAN_BITS[s], s));
    let mut out = [0u32; 256];
    let mut code = 0u32;
    let mut bits = HUFFMAN_BITS[order[0]];
    for (i, &s) in order.iter().enumerate() {
        if i > 0 {
            code += 1;
            code <<= HUFFMAN_BITS[s] - bits;
            bits = HUFFMAN_BITS[s];
        }
        out[s] = code;
    }
    out
}

/// A node of the decoding tree: its two children, each a node (index) or
/// a symbol (`LEAF | octet`).
const LEAF: u16 = 0x8000;

/// The Huffman decoding tree, built once from the canonical codes.
fn tree() -> &'static [[u16; 2]] {
    static TREE: OnceLock<Vec<[u16; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let codes = codes();
        let mut nodes = vec![[0u16; 2]];
        for sym in 0..256usize {
            let (code, bits) = (codes[sym], HUFFMAN_BITS[sym]);
            let mut at = 0usize;
            for i in (0..bits).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    nodes[at][bit] = LEAF | sym as u16;
                } else {
                    if nodes[at][bit] == 0 {
                        nodes.push([0, 0]);
                        nodes[at][bit] = (nodes.len() - 1) as u16;
                    }
                    at = nodes[at][bit] as usize;
                }
            }
        }
        nodes
    })
}

/// Decodes Huffman-coded `input` onto `out`.
pub(crate) fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    huffman_walk(input, |b| {
        out.push(b);
        true
    })
    .map(|_| ())
}

/// Whether Huffman-coded `input` decodes to `plain` (without allocating).
fn huffman_eq(input: &[u8], plain: &[u8]) -> bool {
    let mut at = 0;
    let whole = huffman_walk(input, |b| {
        let same = plain.get(at) == Some(&b);
        at += 1;
        same
    });
    matches!(whole, Ok(true)) && at == plain.len()
}

/// The decoder's transitions, a nibble at a time (as nghttp2 decodes):
/// for each node of [`tree`] (a state; the root is 0) and each 4-bit
/// input, the node reached, the octet completed on the way if any (no code
/// is shorter than 5 bits, so at most one), or that the bits lead nowhere
/// (only EOS's 30 ones do). Two lookups an input octet where the tree
/// takes eight steps and branches: Huffman decoding of a server's
/// literals was the client's largest user-space cost against nginx
/// (bench/README.md (j)), which sends `date` and three more literals with
/// every response.
struct Nibbles {
    /// `next | octet << 8 | EMIT | FAIL`, per state and nibble.
    step: Vec<[u32; 16]>,
    /// Whether decoding may end in a state: the bits since the last
    /// octet are at most 7, all ones (a prefix of EOS: RFC 7541 5.2).
    accept: Vec<bool>,
}

const EMIT: u32 = 1 << 16;
const FAIL: u32 = 1 << 17;

fn nibbles() -> &'static Nibbles {
    static NIBBLES: OnceLock<Nibbles> = OnceLock::new();
    NIBBLES.get_or_init(|| {
        let tree = tree();
        let step = (0..tree.len())
            .map(|state| {
                std::array::from_fn(|nibble| {
                    let (mut at, mut out) = (state, 0u32);
                    for i in (0..4).rev() {
                        let next = tree[at][(nibble >> i) & 1];
                        if next & LEAF != 0 {
                            out = EMIT | u32::from(next & 0xff) << 8;
                            at = 0;
                        } else if next == 0 {
                            return FAIL;
                        } else {
                            at = usize::from(next);
                        }
                    }
                    out | at as u32
                })
            })
            .collect();
        let mut accept = vec![false; tree.len()];
        let mut at = 0usize;
        accept[0] = true;
        for _ in 0..7 {
            at = usize::from(tree[at][1]);
            accept[at] = true;
        }
        Nibbles { step, accept }
    })
}

/// Decodes Huffman-coded `input`, handing each octet to `octet`, which
/// may stop the walk by answering `false` (then `Ok(false)`).
fn huffman_walk(input: &[u8], mut octet: impl FnMut(u8) -> bool) -> Result<bool, HpackError> {
    let Nibbles { step, accept } = nibbles();
    let mut state = 0usize;
    for &byte in input {
        for nibble in [byte >> 4, byte & 0x0f] {
            let t = step[state][usize::from(nibble)];
            if t & FAIL != 0 {
                return Err(HpackError::BadHuffman);
            }
            if t & EMIT != 0 && !octet((t >> 8) as u8) {
                return Ok(false);
            }
            state = (t & 0xff) as usize;
        }
    }
    if accept[state] {
        Ok(true)
    } else {
        Err(HpackError::BadHuffman)
    }
}

/// Huffman-codes `input` onto `out` (for tests, and for header values
/// throng sends).
pub(crate) fn huffman_encode(input: impl IntoIterator<Item = u8>, out: &mut Vec<u8>) {
    let codes = codes();
    let (mut acc, mut n) = (0u64, 0u32);
    for b in input {
        acc = (acc << HUFFMAN_BITS[b as usize]) | u64::from(codes[b as usize]);
        n += u32::from(HUFFMAN_BITS[b as usize]);
        while n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
        acc &= (1u64 << n) - 1;
    }
    if n > 0 {
        out.push(((acc << (8 - n)) | ((1u64 << (8 - n)) - 1)) as u8);
    }
}

/// A string of a header block as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Str<'a> {
    pub(crate) huffman: bool,
    pub(crate) raw: &'a [u8],
}

impl Str<'_> {
    /// Whether every octet of it passes `ok` (false if it does not
    /// decode).
    pub(crate) fn all(&self, mut ok: impl FnMut(u8) -> bool) -> bool {
        if self.huffman {
            matches!(huffman_walk(self.raw, ok), Ok(true))
        } else {
            self.raw.iter().all(|&b| ok(b))
        }
    }

    /// The string's octets, decoded onto `out`.
    pub(crate) fn decode_into(&self, out: &mut Vec<u8>) -> Result<(), HpackError> {
        if self.huffman {
            huffman_decode(self.raw, out)
        } else {
            out.extend_from_slice(self.raw);
            Ok(())
        }
    }

    /// Whether it equals `plain` (decoding only if Huffman-coded).
    pub(crate) fn is(&self, plain: &[u8]) -> bool {
        if !self.huffman {
            return self.raw == plain;
        }
        huffman_eq(self.raw, plain)
    }
}

/// A field's name or value: in a table (decoded), or in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    Plain(&'a [u8]),
    Sent(Str<'a>),
}

impl Text<'_> {
    /// The octets, decoded onto `out`.
    pub(crate) fn decode_into(&self, out: &mut Vec<u8>) -> Result<(), HpackError> {
        match self {
            Text::Plain(p) => {
                out.extend_from_slice(p);
                Ok(())
            }
            Text::Sent(s) => s.decode_into(out),
        }
    }

    /// Whether it equals `plain`.
    pub(crate) fn is(&self, plain: &[u8]) -> bool {
        match self {
            Text::Plain(p) => *p == plain,
            Text::Sent(s) => s.is(plain),
        }
    }

    /// Whether every octet of it passes `ok`.
    pub(crate) fn all(&self, mut ok: impl FnMut(u8) -> bool) -> bool {
        match self {
            Text::Plain(p) => p.iter().all(|&b| ok(b)),
            Text::Sent(s) => s.all(ok),
        }
    }
}

/// One decoded field of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub(crate) name: Text<'a>,
    pub(crate) value: Text<'a>,
    /// The static table's index (1-61) of the name when the name came
    /// from it, else 0: a reader may know such a name without comparing.
    pub(crate) static_name: usize,
}

/// `index` if it is one of the static table's.
fn static_index(index: usize) -> usize {
    if index <= STATIC.len() {
        index
    } else {
        0
    }
}

/// A dynamic table entry: name then value, decoded, in one buffer, and
/// where the name ends.
#[derive(Debug)]
struct Entry {
    octets: Vec<u8>,
    name: usize,
}

impl Entry {
    fn field(&self) -> (&[u8], &[u8]) {
        self.octets.split_at(self.name)
    }

    /// Its size as RFC 7541 counts it.
    fn size(&self) -> usize {
        32 + self.octets.len()
    }
}

/// At most this many spare buffers (a table of 4096 octets holds at most
/// 128 entries; nginx's responses cycle through a few).
const SPARE: usize = 16;

/// The decoder's state: the dynamic table, newest first.
#[derive(Debug)]
pub(crate) struct Decoder {
    table: VecDeque<Entry>,
    /// The table's size as RFC 7541 counts it (32 + name + value each).
    size: usize,
    /// Its current maximum (set by the server's size updates).
    max: usize,
    /// What we allowed (SETTINGS_HEADER_TABLE_SIZE).
    allowed: usize,
    /// Buffers of evicted entries, for the next insertions: servers such
    /// as nginx add `date`, `server`, `content-type` and `content-length`
    /// to the table with every response, so a table that allocated per
    /// entry would allocate (and free) eight times a response.
    spare: Vec<Vec<u8>>,
    recent: Recent,
}

/// The last Huffman-coded value added to the table under each of the
/// static table's names, as sent and decoded. nginx adds the same
/// `server`, `content-type` and `content-length` to the table with every
/// response, and a `date` that changes once a second: a value sent as
/// before is copied, not decoded again (decoding them was the client's
/// largest user-space cost against nginx, bench/README.md (j)).
#[derive(Debug, Default)]
struct Recent {
    /// Per static index (1-61; 0 unused): (as sent, decoded).
    values: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Values longer than this as sent are decoded every time.
const RECENT_MAX: usize = 64;

impl Recent {
    /// Appends `value` (sent under the static name `index`) decoded to
    /// `out`.
    fn decode(
        &mut self,
        index: usize,
        value: Str<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), HpackError> {
        if index > STATIC.len() || value.raw.len() > RECENT_MAX {
            return value.decode_into(out);
        }
        if self.values.is_empty() {
            self.values = vec![Default::default(); STATIC.len() + 1];
        }
        let (sent, decoded) = &mut self.values[index];
        if sent[..] != *value.raw {
            decoded.clear();
            sent.clear();
            if let Err(e) = value.decode_into(decoded) {
                decoded.clear();
                return Err(e);
            }
            sent.extend_from_slice(value.raw);
        }
        out.extend_from_slice(decoded);
        Ok(())
    }
}

/// Reads an integer with an `prefix`-bit prefix at `buf[*at]`.
fn integer(buf: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = (1usize << prefix) - 1;
    let first = *buf.get(*at).ok_or(HpackError::Truncated)? as usize & mask;
    *at += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        if shift > 21 {
            return Err(HpackError::BadIndex);
        }
    }
}

/// Reads a string literal at `buf[*at]`.
fn string<'a>(buf: &'a [u8], at: &mut usize) -> Result<Str<'a>, HpackError> {
    let huffman = *buf.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(buf, at, 7)?;
    let raw = buf
        .get(*at..at.checked_add(len).ok_or(HpackError::Truncated)?)
        .ok_or(HpackError::Truncated)?;
    *at += len;
    Ok(Str { huffman, raw })
}

impl Decoder {
    /// A decoder whose dynamic table may grow to `allowed` octets (what
    /// our SETTINGS_HEADER_TABLE_SIZE says: 4096 by default).
    pub(crate) fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: allowed,
            allowed,
            spare: Vec::new(),
            recent: Recent::default(),
        }
    }

    /// The field at `index` (1-based: the static table, then the dynamic).
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self
                .table
                .get(index - 62)
                .map(Entry::field)
                .ok_or(HpackError::BadIndex),
        }
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            match self.table.pop_back() {
                Some(e) => {
                    self.size -= e.size();
                    self.recycle(e.octets);
                }
                None => break,
            }
        }
    }

    /// Keeps `octets` for a later entry if an entry could use it (a
    /// hostile string's buffer is not held on to).
    fn recycle(&mut self, mut octets: Vec<u8>) {
        if octets.capacity() <= self.allowed && self.spare.len() < SPARE {
            octets.clear();
            self.spare.push(octets);
        }
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        self.evict_to(self.max.saturating_sub(size));
        // An entry larger than the table empties it and is not kept.
        if size <= self.max {
            self.size += size;
            self.table.push_front(entry);
        } else {
            self.recycle(entry.octets);
        }
    }

    /// Decodes `block` (a whole header block: HEADERS and its
    /// CONTINUATIONs joined), calling `field` for each field in order.
    /// Strings not kept by the table are handed over as sent. The sum of
    /// the fields' sizes (RFC 7540's header list size: 32 + name + value,
    /// of the sent lengths) may not pass `max_list`.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        mut field: impl FnMut(Field<'_>),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut list = 0usize;
        let mut fields_seen = false;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                let (n, v) = self.entry(index)?;
                list += 32 + n.len() + v.len();
                if list > max_list {
                    return Err(HpackError::TooLarge);
                }
                field(Field {
                    name: Text::Plain(n),
                    value: Text::Plain(v),
                    static_name: static_index(index),
                });
                fields_seen = true;
            } else if b & 0xe0 == 0x20 {
                // A dynamic table size update: only before the fields.
                let max = integer(block, &mut at, 5)?;
                if fields_seen || max > self.allowed {
                    return Err(HpackError::BadSizeUpdate);
                }
                self.max = max;
                self.evict_to(max);
            } else {
                let indexing = b & 0xc0 == 0x40;
                let index = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                let sent_name = if index == 0 {
                    Some(string(block, &mut at)?)
                } else {
                    None
                };
                let value = string(block, &mut at)?;
                list +=
                    32 + sent_name.map_or_else(
                        || self.entry(index).map_or(0, |(n, _)| n.len()),
                        |s| s.raw.len(),
                    ) + value.raw.len();
                if list > max_list {
                    return Err(HpackError::TooLarge);
                }
                fields_seen = true;
                if indexing {
                    let mut octets = self.spare.pop().unwrap_or_default();
                    match sent_name {
                        Some(s) => s.decode_into(&mut octets)?,
                        None => octets.extend_from_slice(self.entry(index)?.0),
                    }
                    let name = octets.len();
                    match sent_name {
                        None if value.huffman => self.recent.decode(index, value, &mut octets)?,
                        _ => value.decode_into(&mut octets)?,
                    }
                    let entry = Entry { octets, name };
                    let (n, v) = entry.field();
                    field(Field {
                        name: Text::Plain(n),
                        value: Text::Plain(v),
                        static_name: static_index(index),
                    });
                    self.insert(entry);
                } else {
                    let name = match sent_name {
                        Some(s) => Text::Sent(s),
                        None => Text::Plain(self.entry(index)?.0),
                    };
                    field(Field {
                        name,
                        value: Text::Sent(value),
                        static_name: static_index(index),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Encodes a request's header block, the same bytes every time it is
/// sent: the static table's indices where a whole field is there, else
/// literals without indexing (so the server's dynamic table is never
/// touched and the block never depends on what was sent before),
/// Huffman-coded where that is shorter. Names go in lower case, as HTTP/2
/// asks, however they are given. Steps rendered per user call this on
/// every send: it looks each name up once and writes straight into the
/// block.
pub(crate) fn encode_fields<'f>(fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let same = |(n, _): &&(&str, &str)| n.as_bytes().eq_ignore_ascii_case(name);
        match STATIC.iter().position(|e| same(&e)) {
            Some(first) => {
                // The table keeps a name's entries together.
                let whole = STATIC[first..]
                    .iter()
                    .take_while(same)
                    .position(|(_, v)| !v.is_empty() && v.as_bytes() == value);
                if let Some(i) = whole {
                    encode_integer(&mut out, 0x80, 7, first + i + 1);
                    continue;
                }
                encode_integer(&mut out, 0x00, 4, first + 1);
            }
            None => {
                out.push(0x00);
                encode_string(&mut out, name, true);
            }
        }
        encode_string(&mut out, value, false);
    }
    out
}

fn encode_integer(out: &mut Vec<u8>, flags: u8, prefix: u8, mut value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `s` (in lower case if `lower`) as a string literal: Huffman-coded when
/// that is shorter.
fn encode_string(out: &mut Vec<u8>, s: &[u8], lower: bool) {
    let octet = |&b: &u8| if lower { b.to_ascii_lowercase() } else { b };
    let bits: usize = s
        .iter()
        .map(|b| usize::from(HUFFMAN_BITS[octet(b) as usize]))
        .sum();
    let coded = bits.div_ceil(8);
    if coded < s.len() {
        encode_integer(out, 0x80, 7, coded);
        huffman_encode(s.iter().map(octet), out);
    } else {
        encode_integer(out, 0x00, 7, s.len());
        out.extend(s.iter().map(octet));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        d.decode(block, 1 << 20, |f| {
            let (mut n, mut v) = (Vec::new(), Vec::new());
            f.name.decode_into(&mut n).unwrap();
            f.value.decode_into(&mut v).unwrap();
            out.push((String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()));
        })?;
        Ok(out)
    }

    #[test]
    fn huffman_codes_agree_with_the_rfc() {
        // RFC 7541 C.4.1: "www.example.com".
        let mut out = Vec::new();
        huffman_encode(b"www.example.com".iter().copied(), &mut out);
        assert_eq!(out, hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
        let mut back = Vec::new();
        huffman_decode(&out, &mut back).unwrap();
        assert_eq!(back, b"www.example.com");
        // Every octet round-trips.
        let all: Vec<u8> = (0..=255).collect();
        let mut coded = Vec::new();
        huffman_encode(all.iter().copied(), &mut coded);
        let mut back = Vec::new();
        huffman_decode(&coded, &mut back).unwrap();
        assert_eq!(back, all);
        // Compared without decoding into a buffer.
        let coded = Str {
            huffman: true,
            raw: &out,
        };
        assert!(coded.is(b"www.example.com"));
        assert!(!coded.is(b"www.example.co"));
        assert!(!coded.is(b"www.example.comm"));
        assert!(!coded.is(b"ww.example.com"));
    }

    /// The decoder as it was, a bit at a time down [`tree`]: the reference
    /// the nibble table is checked against.
    fn bitwise_walk(input: &[u8], mut octet: impl FnMut(u8) -> bool) -> Result<bool, HpackError> {
        let tree = tree();
        let mut at = 0usize;
        // Bits read since the last symbol, and whether all were ones.
        let (mut pending, mut ones) = (0u32, true);
        for &byte in input {
            for i in (0..8).rev() {
                let bit = (byte >> i) & 1;
                pending += 1;
                ones &= bit == 1;
                let next = tree[at][bit as usize];
                if next & LEAF != 0 {
                    if !octet((next & 0xff) as u8) {
                        return Ok(false);
                    }
                    at = 0;
                    pending = 0;
                    ones = true;
                } else if next == 0 {
                    // No code has this prefix: only EOS (30 ones) is left out.
                    return Err(HpackError::BadHuffman);
                } else {
                    at = next as usize;
                }
            }
        }
        // Padding: fewer than 8 bits, all ones (a prefix of EOS).
        if pending > 7 || !ones {
            return Err(HpackError::BadHuffman);
        }
        Ok(true)
    }
    #[test]
    fn nibble_decoding_agrees_with_the_bitwise_tree() {
        // The states fit the table's 8 bits.
        assert!(tree().len() <= 256);
        let both = |input: &[u8]| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = huffman_walk(input, |o| {
                a.push(o);
                true
            });
            let rb = bitwise_walk(input, |o| {
                b.push(o);
                true
            });
            assert_eq!((ra, &a), (rb, &b), "{input:02x?}");
        };
        // Every input of one and two octets, then a sample of longer ones
        // (valid codes among them, from encoding random octets).
        for x in 0..=0xffffu32 {
            both(&[x as u8]);
            both(&[(x >> 8) as u8, x as u8]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in 0..20_000 {
            let len = (next() % 24) as usize;
            let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if n % 2 == 0 {
                both(&raw);
            } else {
                let mut coded = Vec::new();
                huffman_encode(raw.iter().copied(), &mut coded);
                both(&coded);
            }
        }
    }

    #[test]
    fn evicted_entries_buffers_are_used_again() {
        // nginx's way: every response adds its fields to the table.
        let mut d = Decoder::new(256);
        // date (static index 33), with incremental indexing; Huffman.
        let date = |value: &[u8]| {
            let mut coded = Vec::new();
            huffman_encode(value.iter().copied(), &mut coded);
            let mut block = vec![0x40 | 33, 0x80 | coded.len() as u8];
            block.extend(coded);
            block
        };
        let block = date(b"Sat, 05 Dec 2026 01:20:45 GMT");
        let mut seen = Vec::new();
        for _ in 0..20 {
            let got = fields(&mut d, &block).unwrap();
            assert_eq!(
                got,
                [("date".into(), "Sat, 05 Dec 2026 01:20:45 GMT".into())]
            );
            seen.push(d.table[0].octets.as_ptr());
        }
        // 256 octets hold 3 entries of 65: the fourth insertion evicts the
        // first, and from the fifth on each reuses an evicted buffer.
        assert_eq!((d.table.len(), d.size), (3, 195));
        assert!(d.spare.len() <= 1);
        let distinct: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 4, "buffers for 20 entries");
        // A value sent as before is copied from the last; a new one (the
        // next second), an empty one and a bad one are decoded.
        for value in [
            "Sat, 05 Dec 2026 01:20:46 GMT",
            "",
            "Sat, 05 Dec 2026 01:20:45 GMT",
        ] {
            assert_eq!(fields(&mut d, &date(value.as_bytes())).unwrap()[0].1, value);
        }
        let bad = [0x40 | 33, 0x81, 0x00];
        assert_eq!(fields(&mut d, &bad), Err(HpackError::BadHuffman));
        assert_eq!(fields(&mut d, &[0x40 | 33, 0x80]).unwrap()[0].1, "");
    }

    #[test]
    fn bad_huffman_is_an_error() {
        // Padding of 8 ones, and padding of zeros.
        assert_eq!(
            huffman_decode(&[0xff], &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
        let mut coded = Vec::new();
        huffman_encode(b"a".iter().copied(), &mut coded); // 00011 + 111 padding
        let mut zeros = coded.clone();
        *zeros.last_mut().unwrap() &= 0xf8;
        assert_eq!(
            huffman_decode(&zeros, &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
        // EOS itself (30 ones).
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xfc], &mut Vec::new()),
            Err(HpackError::BadHuffman)
        );
    }

    #[test]
    fn the_rfcs_request_examples_decode() {
        // RFC 7541 C.4: three requests with Huffman coding, one decoder.
        let mut d = Decoder::new(4096);
        let first = fields(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).unwrap();
        assert_eq!(
            first,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(d.size, 57);
        let second = fields(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        assert_eq!(d.size, 110);
    }

    #[test]
    fn hostile_blocks_are_errors_not_panics() {
        let mut d = Decoder::new(4096);
        // An index past both tables; a truncated literal; a size update
        // over what we allowed; one after a field; a huge integer.
        assert_eq!(fields(&mut d, &[0xff, 0x00]), Err(HpackError::BadIndex));
        assert_eq!(
            fields(&mut d, &[0x40, 0x05, b'a']),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            fields(&mut d, &hex("3fe2 1f")),
            Err(HpackError::BadSizeUpdate)
        );
        assert_eq!(
            fields(&mut d, &hex("82 20")),
            Err(HpackError::BadSizeUpdate)
        );
        assert_eq!(
            fields(&mut d, &hex("ff ff ff ff ff ff 01")),
            Err(HpackError::BadIndex)
        );
        // Over the list cap.
        let block = encode_fields([(&b"x-big"[..], &[b'a'; 100][..])]);
        assert_eq!(d.decode(&block, 64, |_| {}), Err(HpackError::TooLarge));
    }

    #[test]
    fn names_are_encoded_in_lower_case_and_looked_up_in_the_static_table() {
        let block = encode_fields([
            (&b":method"[..], &b"POST"[..]),
            (b"Accept-Encoding", b"gzip, deflate"),
            (b"Content-Type", b"text/plain"),
            (b"X-Trace-ID", b"AB"),
        ]);
        // :method POST and accept-encoding's whole field are indices 3 and
        // 16; content-type's name is index 31, with a literal value (4 bits).
        assert_eq!(&block[..3], &[0x83, 0x90, 0x0f]);
        assert_eq!(block[3], 31 - 15);
        let got = fields(&mut Decoder::new(4096), &block).unwrap();
        assert_eq!(got[1], ("accept-encoding".into(), "gzip, deflate".into()));
        assert_eq!(got[2], ("content-type".into(), "text/plain".into()));
        // A literal name in lower case; the value as it was.
        assert_eq!(got[3], ("x-trace-id".into(), "AB".into()));
    }

    #[test]
    fn a_prepared_request_round_trips() {
        let block = encode_fields([
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"https"),
            (b":authority", b"127.0.0.1:8443"),
            (b":path", b"/items?page=2"),
            (b"user-agent", b"throng/0.1"),
            (b"x-custom", b"value"),
        ]);
        let mut d = Decoder::new(4096);
        let got = fields(&mut d, &block).unwrap();
        assert_eq!(got[0], (":method".into(), "GET".into()));
        assert_eq!(got[2], (":authority".into(), "127.0.0.1:8443".into()));
        assert_eq!(got[5], ("x-custom".into(), "value".into()));
        // Nothing went into the table.
        assert_eq!(d.size, 0);
    }
}
