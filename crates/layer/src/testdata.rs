//! Inputs for the compression tests: text, noise and both, each a function of a seed.

/// The next state of a xorshift64 generator (never 0 from a state that is not 0).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Compressible but not trivial: text-like runs with pseudo-random words.
pub(crate) fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 9);
    while out.len() < len {
        let random = xorshift(&mut state);
        let word = ["layer ", "tar ", "gzip ", "block ", "\n", "usr/lib/"][(random % 6) as usize];
        out.extend_from_slice(word.as_bytes());
        out.push((random >> 32) as u8);
    }
    out.truncate(len);
    out
}

/// Incompressible: xorshift output, every byte of it.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&xorshift(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text and noise in stretches that straddle gzip block boundaries, so some blocks are all
/// noise, some all text and some both.
pub(crate) fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let block = crate::pgzip::BLOCK_SIZE;
    let mut out = Vec::with_capacity(len);
    let mut round = 0u64;
    while out.len() < len {
        let stretch = block / 3 + (round % 5) as usize * block / 2;
        if round.is_multiple_of(2) {
            out.extend_from_slice(&noise(stretch, seed ^ round));
        } else {
            out.extend_from_slice(&text(stretch, seed ^ round));
        }
        round += 1;
    }
    out.truncate(len);
    out
}
