//! `meta.k8s.io/v1` `Table`: the server-side printing format kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub metadata: ListMeta,
    pub column_definitions: Vec<TableColumnDefinition>,
    pub rows: Vec<TableRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableColumnDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    /// 0 is shown by default; higher values only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

impl TableColumnDefinition {
    pub fn new(name: &str, type_: &str, format: &str, priority: i32, description: &str) -> Self {
        TableColumnDefinition {
            name: name.to_string(),
            type_: type_.to_string(),
            format: format.to_string(),
            description: description.to_string(),
            priority,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRow {
    pub cells: Vec<serde_json::Value>,
    /// The object itself or its `PartialObjectMetadata`, as asked by `includeObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

impl Table {
    pub fn new(columns: Vec<TableColumnDefinition>) -> Self {
        Table {
            kind: "Table".to_string(),
            api_version: "meta.k8s.io/v1".to_string(),
            metadata: ListMeta::default(),
            column_definitions: columns,
            rows: Vec::new(),
        }
    }
}
