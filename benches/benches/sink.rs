//! Sink micro-benchmarks: the per-message costs behind the sink harness's ceiling.
//!
//!   cargo bench -p gatehouse-benches --bench sink
//!
//! Figures and the exact command are in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use events::EnvelopeView;
use gatehouse_benches::sink_messages::messages;
use parquet::arrow::ArrowWriter;
use sink::table::{Rows, Source, Table};

const BATCH: usize = 8192;

fn source(offset: i64) -> Source<'static> {
    Source {
        topic: "bench",
        partition: 0,
        offset,
        timestamp_ms: None,
    }
}

fn bench(c: &mut Criterion) {
    // Exposures only (the wider table), one batch's worth.
    let msgs: Vec<Vec<u8>> = messages(2 * BATCH).into_iter().step_by(2).collect();
    let mut group = c.benchmark_group("sink");
    group.throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("parse (EnvelopeView), 8192 exposures", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(EnvelopeView::parse(black_box(m)).unwrap());
            }
        })
    });
    group.bench_function("parse + Arrow builders, 8192 exposures", |b| {
        let mut rows = Rows::new(Table::Exposures);
        b.iter(|| {
            for (i, m) in msgs.iter().enumerate() {
                let view = EnvelopeView::parse(m).unwrap();
                rows.push_envelope(&view, source(i as i64), m.len());
            }
            black_box(rows.finish())
        })
    });
    group.bench_function(
        "parse + builders + Parquet encode (zstd 3), 8192 exposures",
        |b| {
            let props = sink::SinkConfig::new("unused").writer_properties().unwrap();
            let mut rows = Rows::new(Table::Exposures);
            b.iter(|| {
                let mut writer = ArrowWriter::try_new(
                    Vec::new(),
                    Table::Exposures.schema(),
                    Some(props.clone()),
                )
                .unwrap();
                for (i, m) in msgs.iter().enumerate() {
                    let view = EnvelopeView::parse(m).unwrap();
                    rows.push_envelope(&view, source(i as i64), m.len());
                }
                writer.write(&rows.finish()).unwrap();
                black_box(writer.into_inner().unwrap().len())
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
