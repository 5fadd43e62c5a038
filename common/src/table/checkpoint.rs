//! Delta checkpoints: the table's state at a version in one Parquet file
//! (`{version:020}.checkpoint.parquet`, one row per action: txn, add,
//! remove, metaData, protocol), named by `_delta_log/_last_checkpoint`, so
//! that readers and new workers read one file and the few commits after it
//! instead of every commit since version 0.
//!
//! The actions are kept as the log's JSON; this file turns JSON actions into
//! the checkpoint's columns and back, for the one schema below.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::{Map, Value};

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn map(name: &str) -> Field {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![Field::new("key", DataType::Utf8, false), s("value")])),
        false,
    );
    Field::new(name, DataType::Map(Arc::new(entries), false), true)
}
fn list(name: &str) -> Field {
    Field::new(name, DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))), true)
}
fn structure(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The checkpoint's schema (the Delta protocol's, for the actions we write).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        structure("txn", vec![s("appId"), long("version"), long("lastUpdated")]),
        structure(
            "add",
            vec![
                s("path"),
                map("partitionValues"),
                long("size"),
                long("modificationTime"),
                Field::new("dataChange", DataType::Boolean, true),
                s("stats"),
                map("tags"),
            ],
        ),
        structure(
            "remove",
            vec![
                s("path"),
                long("deletionTimestamp"),
                Field::new("dataChange", DataType::Boolean, true),
                Field::new("extendedFileMetadata", DataType::Boolean, true),
                map("partitionValues"),
                long("size"),
            ],
        ),
        structure(
            "metaData",
            vec![
                s("id"),
                s("name"),
                s("description"),
                structure("format", vec![s("provider"), map("options")]),
                s("schemaString"),
                list("partitionColumns"),
                map("configuration"),
                long("createdTime"),
            ],
        ),
        structure(
            "protocol",
            vec![
                Field::new("minReaderVersion", DataType::Int32, true),
                Field::new("minWriterVersion", DataType::Int32, true),
                list("readerFeatures"),
                list("writerFeatures"),
            ],
        ),
    ]))
}

/// JSON values (one per row; `None`/null: a null) as an array of `dt`.
fn to_array(values: &[Option<&Value>], dt: &DataType) -> ArrayRef {
    let present = |v: &Option<&Value>| v.is_some_and(|v| !v.is_null());
    match dt {
        DataType::Utf8 => Arc::new(StringArray::from(
            values.iter().map(|v| v.and_then(|v| v.as_str().map(str::to_string))).collect::<Vec<_>>(),
        )),
        DataType::Int64 => {
            Arc::new(Int64Array::from(values.iter().map(|v| v.and_then(Value::as_i64)).collect::<Vec<_>>()))
        }
        DataType::Int32 => Arc::new(Int32Array::from(
            values.iter().map(|v| v.and_then(Value::as_i64).map(|n| n as i32)).collect::<Vec<_>>(),
        )),
        DataType::Boolean => {
            Arc::new(BooleanArray::from(values.iter().map(|v| v.and_then(Value::as_bool)).collect::<Vec<_>>()))
        }
        DataType::Struct(fields) => {
            let children: Vec<ArrayRef> = fields
                .iter()
                .map(|f| {
                    let child: Vec<Option<&Value>> = values.iter().map(|v| v.and_then(|v| v.get(f.name()))).collect();
                    to_array(&child, f.data_type())
                })
                .collect();
            let nulls = NullBuffer::from(values.iter().map(present).collect::<Vec<_>>());
            Arc::new(StructArray::new(fields.clone(), children, Some(nulls)))
        }
        DataType::Map(entries, _) => {
            let (mut keys, mut vals, mut lens) = (Vec::new(), Vec::new(), Vec::new());
            for v in values {
                let obj = v.and_then(Value::as_object);
                lens.push(obj.map_or(0, Map::len));
                for (k, x) in obj.into_iter().flatten() {
                    keys.push(k.clone());
                    vals.push(x.as_str().map(str::to_string));
                }
            }
            let DataType::Struct(kv) = entries.data_type() else { unreachable!("map entries are a struct") };
            let entries_array = StructArray::new(
                kv.clone(),
                vec![Arc::new(StringArray::from(keys)), Arc::new(StringArray::from(vals))],
                None,
            );
            let nulls = NullBuffer::from(values.iter().map(present).collect::<Vec<_>>());
            Arc::new(
                MapArray::try_new(entries.clone(), OffsetBuffer::from_lengths(lens), entries_array, Some(nulls), false)
                    .expect("a valid map"),
            )
        }
        DataType::List(item) => {
            let (mut items, mut lens) = (Vec::new(), Vec::new());
            for v in values {
                let arr = v.and_then(Value::as_array);
                lens.push(arr.map_or(0, Vec::len));
                items.extend(arr.into_iter().flatten().map(|x| x.as_str().map(str::to_string)));
            }
            let nulls = NullBuffer::from(values.iter().map(present).collect::<Vec<_>>());
            Arc::new(ListArray::new(
                item.clone(),
                OffsetBuffer::from_lengths(lens),
                Arc::new(StringArray::from(items)),
                Some(nulls),
            ))
        }
        other => unreachable!("no {other} column in a checkpoint"),
    }
}

/// The checkpoint of `actions` (JSON objects with one key: `txn`, `add`,
/// `remove`, `metaData` or `protocol`) as one record batch.
pub fn batch(actions: &[Value]) -> RecordBatch {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values: Vec<Option<&Value>> = actions.iter().map(|a| a.get(f.name())).collect();
            to_array(&values, f.data_type())
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("the checkpoint's schema")
}

/// One value of an array as JSON (null for a null).
fn to_json(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            Value::Object(
                fields.iter().zip(s.columns()).map(|(f, c)| (f.name().clone(), to_json(c.as_ref(), i))).collect(),
            )
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let entries = m.value(i);
            let (k, v) = (entries.column(0), entries.column(1));
            Value::Object(
                (0..entries.len())
                    .map(|j| (to_json(k.as_ref(), j).as_str().unwrap_or_default().to_string(), to_json(v.as_ref(), j)))
                    .collect(),
            )
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let items = l.value(i);
            Value::Array((0..items.len()).map(|j| to_json(items.as_ref(), j)).collect())
        }
        _ => Value::Null,
    }
}

/// A checkpoint's rows as the log's JSON lines (one action a line).
pub fn lines(batch: &RecordBatch) -> String {
    let mut out = String::new();
    for i in 0..batch.num_rows() {
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            if !c.is_null(i) {
                let mut action = Map::new();
                action.insert(f.name().clone(), to_json(c.as_ref(), i));
                out.push_str(&Value::Object(action).to_string());
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_go_into_a_checkpoint_and_come_back_unchanged() {
        let actions: Vec<Value> = [
            r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["timestampNtz"],"writerFeatures":["timestampNtz"]}}"#,
            r#"{"metaData":{"id":"x","name":"d","description":"","format":{"provider":"parquet","options":{}},"schemaString":"{}","partitionColumns":["year"],"configuration":{},"createdTime":5}}"#,
            r#"{"add":{"path":"year=2022/a.parquet","partitionValues":{"year":"2022"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":7}","tags":{"lakefleet.partition":"2022-01-08"}}}"#,
            r#"{"remove":{"path":"year=2021/b.parquet","deletionTimestamp":2,"dataChange":true,"extendedFileMetadata":true,"partitionValues":{"year":"2021"},"size":3}}"#,
            r#"{"txn":{"appId":"lakefleet/d/2022-01-08","version":1,"lastUpdated":1}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let b = batch(&actions);
        assert_eq!(b.num_rows(), 5);
        let back: Vec<Value> = lines(&b).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, actions);
    }
}
