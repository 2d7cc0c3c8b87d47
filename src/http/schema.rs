//! OpenAPI schemas the adapters give to domain enums. A domain enum names its values once
//! (`ALL` and `as_str()`); [`string_enum_schema!`] turns that into the document's
//! `{"type": "string", "enum": [...]}`, so the schema lives in the adapter (api.rs) and lists
//! exactly what the domain accepts.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The schema of a string enum with `values`.
pub fn string_enum<'a>(
    values: impl IntoIterator<Item = &'a str>,
    description: &str,
) -> RefOr<Schema> {
    let values: Vec<&str> = values.into_iter().collect();
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .description(Some(description))
            .build(),
    ))
}

/// Implements `utoipa::ToSchema` for a domain enum with `ALL` and `as_str()`:
/// `string_enum_schema!(State, "Lifecycle state");` in the context's api.rs, or
/// `string_enum_schema!(config::Role as "InstallRole", "...")` when another schema has the
/// type's name (schema names are global to the document).
#[macro_export]
macro_rules! string_enum_schema {
    ($t:ty, $doc:literal) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::http::schema::string_enum(<$t>::ALL.iter().map(|v| v.as_str()), $doc)
            }
        }
        impl utoipa::ToSchema for $t {}
    };
    ($t:ty as $name:literal, $doc:literal) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::http::schema::string_enum(<$t>::ALL.iter().map(|v| v.as_str()), $doc)
            }
        }
        impl utoipa::ToSchema for $t {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
