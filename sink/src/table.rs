//! The three Parquet tables (their columns, documented in `docs/parquet.md`) and the Arrow
//! builders that turn Kafka messages into their rows without an intermediate JSON tree.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use events::{raw_text, EnvelopeView};

/// A Parquet table under the sink's root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Messages with an `exposure` (gate, config and layer exposures).
    Exposures,
    /// Custom events (messages without an `exposure`).
    Events,
    /// Messages the sink could not read, kept as raw bytes with the reason.
    DeadLetters,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Exposures, Table::Events, Table::DeadLetters];

    /// The table's directory under the root (also its name in docs and queries).
    pub fn dir(self) -> &'static str {
        match self {
            Table::Exposures => "exposures",
            Table::Events => "events",
            Table::DeadLetters => "dead_letters",
        }
    }

    /// The table's Arrow schema (built once).
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: OnceLock<[SchemaRef; 3]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| Table::ALL.map(|t| Arc::new(Schema::new(t.fields()))));
        all[self as usize].clone()
    }

    fn fields(self) -> Vec<Field> {
        let time = |name| Field::new(name, timestamp_type(), false);
        let text = |name, nullable| Field::new(name, DataType::Utf8, nullable);
        let kafka = [
            text("kafka_topic", false),
            Field::new("kafka_partition", DataType::Int32, false),
            Field::new("kafka_offset", DataType::Int64, false),
        ];
        if self == Table::DeadLetters {
            return [
                Field::new("kafka_timestamp", timestamp_type(), true),
                Field::new("kafka_key", DataType::Binary, true),
                Field::new("payload", DataType::Binary, false),
                text("error", false),
            ]
            .into_iter()
            .chain(kafka)
            .collect();
        }
        let mut fields = vec![
            time("event_time"),
            time("received_at"),
            text("event_id", false),
            text("event_name", false),
        ];
        if self == Table::Exposures {
            fields.extend([
                text("exposure_kind", false),
                text("entity_name", false),
                text("rule_id", false),
                text("group_name", true),
                Field::new("gate_value", DataType::Boolean, true),
            ]);
        } else {
            fields.extend([
                text("value", true),
                Field::new("value_number", DataType::Float64, true),
            ]);
        }
        fields.extend([
            text("unit_id_type", false),
            text("unit_id", false),
            text("user_id", true),
            text("environment_tier", true),
            text("sdk_type", true),
            text("sdk_version", true),
            text("key_id", false),
            text("user", false),
            text("metadata", false),
        ]);
        if self == Table::Exposures {
            fields.push(Field::new(
                "secondary_exposures",
                DataType::List(Arc::new(Field::new_list_field(
                    DataType::Struct(secondary_exposure_fields()),
                    true,
                ))),
                false,
            ));
        }
        fields.extend(kafka);
        fields
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn secondary_exposure_fields() -> Fields {
    Fields::from(vec![
        Field::new("gate", DataType::Utf8, true),
        Field::new("gate_value", DataType::Boolean, true),
        Field::new("rule_id", DataType::Utf8, true),
    ])
}

/// Where a message sits in Kafka.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The message timestamp (producer create time), when the broker has one.
    pub timestamp_ms: Option<i64>,
}

/// Rows of one table being accumulated before they become a [`RecordBatch`].
///
/// One struct serves all tables: builders a table does not use stay empty, and
/// [`Rows::finish`] emits exactly the table's schema.
pub struct Rows {
    table: Table,
    len: usize,
    approx_bytes: usize,
    event_time: TimestampMillisecondBuilder,
    received_at: TimestampMillisecondBuilder,
    event_id: StringBuilder,
    event_name: StringBuilder,
    exposure_kind: StringBuilder,
    entity_name: StringBuilder,
    rule_id: StringBuilder,
    group_name: StringBuilder,
    gate_value: BooleanBuilder,
    value: StringBuilder,
    value_number: Float64Builder,
    unit_id_type: StringBuilder,
    unit_id: StringBuilder,
    user_id: StringBuilder,
    environment_tier: StringBuilder,
    sdk_type: StringBuilder,
    sdk_version: StringBuilder,
    key_id: StringBuilder,
    user: StringBuilder,
    metadata: StringBuilder,
    secondary_exposures: ListBuilder<StructBuilder>,
    kafka_timestamp: TimestampMillisecondBuilder,
    kafka_key: BinaryBuilder,
    payload: BinaryBuilder,
    error: StringBuilder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
}

impl Rows {
    /// Empty rows for `table`.
    pub fn new(table: Table) -> Rows {
        let timestamps = || TimestampMillisecondBuilder::new().with_timezone("UTC");
        Rows {
            table,
            len: 0,
            approx_bytes: 0,
            event_time: timestamps(),
            received_at: timestamps(),
            event_id: StringBuilder::new(),
            event_name: StringBuilder::new(),
            exposure_kind: StringBuilder::new(),
            entity_name: StringBuilder::new(),
            rule_id: StringBuilder::new(),
            group_name: StringBuilder::new(),
            gate_value: BooleanBuilder::new(),
            value: StringBuilder::new(),
            value_number: Float64Builder::new(),
            unit_id_type: StringBuilder::new(),
            unit_id: StringBuilder::new(),
            user_id: StringBuilder::new(),
            environment_tier: StringBuilder::new(),
            sdk_type: StringBuilder::new(),
            sdk_version: StringBuilder::new(),
            key_id: StringBuilder::new(),
            user: StringBuilder::new(),
            metadata: StringBuilder::new(),
            secondary_exposures: ListBuilder::new(StructBuilder::from_fields(
                secondary_exposure_fields(),
                0,
            )),
            kafka_timestamp: timestamps(),
            kafka_key: BinaryBuilder::new(),
            payload: BinaryBuilder::new(),
            error: StringBuilder::new(),
            kafka_topic: StringBuilder::new(),
            kafka_partition: Int32Builder::new(),
            kafka_offset: Int64Builder::new(),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Roughly the bytes held (the messages' sizes): what bounds memory before a flush.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    /// Appends one readable message to the exposures or events table.
    pub fn push_envelope(&mut self, env: &EnvelopeView<'_>, source: Source<'_>, size: usize) {
        debug_assert_ne!(self.table, Table::DeadLetters);
        self.event_time.append_value(env.event_time_ms);
        self.received_at.append_value(env.received_at_ms);
        self.event_id.append_value(&env.event_id);
        self.event_name.append_value(&env.event_name);
        match (&env.exposure, self.table) {
            (Some(exposure), Table::Exposures) => {
                self.exposure_kind.append_value(&exposure.kind);
                self.entity_name.append_value(&exposure.name);
                self.rule_id.append_value(&exposure.rule_id);
                self.group_name
                    .append_option(exposure.group_name.as_deref());
                self.gate_value.append_option(exposure.gate_value);
                let list = self.secondary_exposures.values();
                for nested in &env.secondary_exposures {
                    let gate = nested.gate.and_then(raw_text);
                    let rule = nested.rule_id.and_then(raw_text);
                    text_field(list, 0).append_option(gate.as_deref());
                    list.field_builder::<BooleanBuilder>(1)
                        .expect("schema: gate_value is bool")
                        .append_option(nested.gate_value());
                    text_field(list, 2).append_option(rule.as_deref());
                    list.append(true);
                }
                self.secondary_exposures.append(true);
            }
            _ => {
                let value = env.value.and_then(raw_text);
                self.value_number
                    .append_option(value.as_deref().and_then(|v| v.trim().parse::<f64>().ok()));
                self.value.append_option(value.as_deref());
            }
        }
        self.unit_id_type.append_value(&env.unit_id_type);
        self.unit_id.append_value(&env.unit_id);
        let keys = env.user_keys();
        self.user_id
            .append_option(keys.user_id.and_then(raw_text).as_deref());
        self.environment_tier
            .append_option(keys.environment.and_then(|e| e.tier).as_deref());
        self.sdk_type.append_option(env.sdk_type.as_deref());
        self.sdk_version.append_option(env.sdk_version.as_deref());
        self.key_id.append_value(&env.key_id);
        self.user.append_value(env.user.get());
        self.metadata
            .append_value(env.metadata.map_or("{}", |m| m.get()));
        self.push_source(source, size);
    }

    /// Appends one unreadable message to the dead-letter table.
    pub fn push_dead_letter(
        &mut self,
        key: Option<&[u8]>,
        payload: &[u8],
        error: &str,
        source: Source<'_>,
    ) {
        debug_assert_eq!(self.table, Table::DeadLetters);
        self.kafka_timestamp.append_option(source.timestamp_ms);
        self.kafka_key.append_option(key);
        self.payload.append_value(payload);
        self.error.append_value(error);
        self.push_source(source, payload.len());
    }

    fn push_source(&mut self, source: Source<'_>, size: usize) {
        self.kafka_topic.append_value(source.topic);
        self.kafka_partition.append_value(source.partition);
        self.kafka_offset.append_value(source.offset);
        self.len += 1;
        self.approx_bytes += size + 64;
    }

    /// The held rows as one batch of the table's schema; the builders are left empty.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(24);
        if self.table == Table::DeadLetters {
            columns.extend([
                Arc::new(self.kafka_timestamp.finish()) as ArrayRef,
                Arc::new(self.kafka_key.finish()),
                Arc::new(self.payload.finish()),
                Arc::new(self.error.finish()),
            ]);
        } else {
            columns.extend([
                Arc::new(self.event_time.finish()) as ArrayRef,
                Arc::new(self.received_at.finish()),
                Arc::new(self.event_id.finish()),
                Arc::new(self.event_name.finish()),
            ]);
            if self.table == Table::Exposures {
                columns.extend([
                    Arc::new(self.exposure_kind.finish()) as ArrayRef,
                    Arc::new(self.entity_name.finish()),
                    Arc::new(self.rule_id.finish()),
                    Arc::new(self.group_name.finish()),
                    Arc::new(self.gate_value.finish()),
                ]);
            } else {
                columns.extend([
                    Arc::new(self.value.finish()) as ArrayRef,
                    Arc::new(self.value_number.finish()),
                ]);
            }
            columns.extend([
                Arc::new(self.unit_id_type.finish()) as ArrayRef,
                Arc::new(self.unit_id.finish()),
                Arc::new(self.user_id.finish()),
                Arc::new(self.environment_tier.finish()),
                Arc::new(self.sdk_type.finish()),
                Arc::new(self.sdk_version.finish()),
                Arc::new(self.key_id.finish()),
                Arc::new(self.user.finish()),
                Arc::new(self.metadata.finish()),
            ]);
            if self.table == Table::Exposures {
                columns.push(Arc::new(self.secondary_exposures.finish()));
            }
        }
        columns.extend([
            Arc::new(self.kafka_topic.finish()) as ArrayRef,
            Arc::new(self.kafka_partition.finish()),
            Arc::new(self.kafka_offset.finish()),
        ]);
        self.len = 0;
        self.approx_bytes = 0;
        RecordBatch::try_new(self.table.schema(), columns)
            .expect("Rows fills exactly the table's schema (tested)")
    }
}

fn text_field(list: &mut StructBuilder, i: usize) -> &mut StringBuilder {
    list.field_builder::<StringBuilder>(i)
        .expect("schema: text field")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    fn source(offset: i64) -> Source<'static> {
        Source {
            topic: "t",
            partition: 3,
            offset,
            timestamp_ms: Some(7),
        }
    }

    #[test]
    fn every_table_builds_its_schema_from_real_messages() {
        let exposure = br#"{"schema_version":1,"event_id":"e1","event_name":"statsig::gate_exposure",
            "event_time_ms":1700000000000,"received_at_ms":1700000000001,"key_id":"k",
            "unit_id_type":"userID","unit_id":"u1","user":{"userID":"u1","statsigEnvironment":{"tier":"production"}},
            "metadata":{"gate":"g"},"secondary_exposures":[{"gate":"n","gateValue":"true","ruleID":"r0"}],
            "exposure":{"kind":"gate","name":"g","rule_id":"r1","gate_value":true}}"#;
        let event = br#"{"schema_version":1,"event_id":"e2","event_name":"purchase",
            "event_time_ms":1700000000000,"received_at_ms":1700000000001,"key_id":"k",
            "unit_id_type":"userID","unit_id":"u1","user":{"userID":7},"value":"12.5"}"#;
        let mut exposures = Rows::new(Table::Exposures);
        let view = EnvelopeView::parse(exposure).unwrap();
        exposures.push_envelope(&view, source(1), exposure.len());
        exposures.push_envelope(&view, source(2), exposure.len());
        let batch = exposures.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(exposures.len(), 0);
        let col = |b: &RecordBatch, name: &str| b.column_by_name(name).unwrap().clone();
        assert_eq!(col(&batch, "entity_name").as_string::<i32>().value(0), "g");
        assert_eq!(
            col(&batch, "environment_tier").as_string::<i32>().value(1),
            "production"
        );
        let nested = col(&batch, "secondary_exposures");
        let nested = nested.as_list::<i32>().value(0);
        assert_eq!(
            nested.as_struct().column(0).as_string::<i32>().value(0),
            "n"
        );

        let mut events = Rows::new(Table::Events);
        let view = EnvelopeView::parse(event).unwrap();
        events.push_envelope(&view, source(5), event.len());
        let batch = events.finish();
        assert_eq!(col(&batch, "value").as_string::<i32>().value(0), "12.5");
        assert_eq!(
            col(&batch, "value_number")
                .as_primitive::<Float64Type>()
                .value(0),
            12.5
        );
        assert_eq!(col(&batch, "user_id").as_string::<i32>().value(0), "7");
        assert_eq!(col(&batch, "metadata").as_string::<i32>().value(0), "{}");

        let mut dead = Rows::new(Table::DeadLetters);
        dead.push_dead_letter(Some(b"key"), b"{oops", "expected value", source(9));
        let batch = dead.finish();
        assert_eq!(
            col(&batch, "error").as_string::<i32>().value(0),
            "expected value"
        );
        assert_eq!(batch.schema(), Table::DeadLetters.schema());
    }
}
