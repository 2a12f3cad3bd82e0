//! Micro-benchmarks of the per-request token work: parse (prefix, length,
//! alphabet, CRC-32), hash (SHA-256, the lookup key), derive (HMAC-SHA256 of a
//! successor), generate (OS randomness), and opening a sealed client secret.
//! Run: `cargo bench -p rotor-core`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rotor_core::{Keyring, ServerKey, Token, TokenKind};

fn tokens(c: &mut Criterion) {
    let t = Token::generate(TokenKind::Refresh);
    let s = t.expose().to_owned();
    let key = [7u8; 32];
    c.bench_function("token parse", |b| {
        b.iter(|| Token::parse(TokenKind::Refresh, black_box(&s)).unwrap())
    });
    c.bench_function("token hash (sha-256)", |b| b.iter(|| black_box(&t).hash()));
    c.bench_function("token derive (hmac-sha256)", |b| {
        b.iter(|| {
            Token::derive(
                TokenKind::Access,
                None,
                black_box(&key),
                black_box(s.as_bytes()),
            )
        })
    });
    c.bench_function("token generate", |b| {
        b.iter(|| Token::generate(TokenKind::Access))
    });
    let ring = Keyring::new(ServerKey::generate());
    let sealed = ring.seal(s.as_bytes(), "app:x:client_secret");
    c.bench_function("client secret open (xchacha20-poly1305)", |b| {
        b.iter(|| {
            ring.open(black_box(&sealed), "app:x:client_secret")
                .unwrap()
        })
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
