//! The fan-out hub: one event delivered to 10,000 connected recipients.
//!
//! Measures `Hub::publish` (serialise once, queue the shared frame to every
//! recipient connection) and reports the time per recipient and the heap
//! allocations per publish, counted by the global allocator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kith_benches::{allocations, CountingAlloc};
use kith_core::{
    ConversationId, Delivery, Event, EventSink, Message, MessageId, Timestamp, UserId,
};
use kith_ws::{Frame, Hub, HubConfig};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const RECIPIENTS: u64 = 10_000;

fn event() -> Event {
    Event::MessageCreated {
        message: Message {
            id: MessageId::new(1 << 40),
            conversation_id: ConversationId::new(1 << 39),
            seq: 42,
            version: 42,
            sender: UserId::new(1),
            client_id: "c-42".into(),
            body: Some("x".repeat(100)),
            reply_to: None,
            reactions: Vec::new(),
            created_at: Timestamp::from_millis(1_767_225_600_000),
            edited_at: None,
            deleted_at: None,
        },
    }
}

fn fan_out(c: &mut Criterion) {
    let hub = Arc::new(Hub::new(HubConfig { queue_len: 1024 }));
    let recipients: Vec<UserId> = (1..=RECIPIENTS).map(UserId::new).collect();
    let subscriptions: Vec<_> = recipients
        .iter()
        .map(|&u| hub.subscribe(u, None).0)
        .collect();
    let mut drained: Vec<Frame> = Vec::with_capacity(4);
    let mut drain = || {
        for s in &subscriptions {
            drained.clear();
            s.outbox().drain(&mut drained);
        }
    };
    // Warm up every queue so that steady state is measured.
    for _ in 0..4 {
        hub.publish(Delivery {
            recipients: recipients.clone(),
            event: event(),
        });
    }
    drain();

    // Allocations of one publish, outside criterion's own bookkeeping.
    let delivery = Delivery {
        recipients: recipients.clone(),
        event: event(),
    };
    let before = allocations();
    hub.publish(delivery);
    let per_publish = allocations() - before;
    drain();
    eprintln!(
        "hub fan-out: {per_publish} heap allocations for one publish to {RECIPIENTS} recipients"
    );

    let mut group = c.benchmark_group("hub");
    group.throughput(Throughput::Elements(RECIPIENTS));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("publish_to_10k_recipients", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let delivery = Delivery {
                    recipients: recipients.clone(),
                    event: event(),
                };
                let start = Instant::now();
                hub.publish(delivery);
                total += start.elapsed();
                drain();
            }
            total
        });
    });
    group.bench_function("serialise_event_once", |b| {
        b.iter_batched(event, |e| Frame::event(&e), BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
