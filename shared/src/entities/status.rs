//! How a [`ReservationStatus`] is stored: its name in a `VARCHAR(16)`.
//! Kept here, with the entities, so the domain type knows nothing of the
//! database.

use sea_orm::{
    ColIdx, DbErr, QueryResult, TryGetError, TryGetable,
    sea_query::{ArrayType, ColumnType, Nullable, StringLen, Value, ValueType, ValueTypeErr},
};

use crate::domain::ReservationStatus;

impl From<ReservationStatus> for Value {
    fn from(status: ReservationStatus) -> Self {
        Value::String(Some(status.as_str().to_owned()))
    }
}

impl ValueType for ReservationStatus {
    fn try_from(value: Value) -> Result<Self, ValueTypeErr> {
        match value {
            Value::String(Some(name)) => name.parse().map_err(|_| ValueTypeErr),
            _ => Err(ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "ReservationStatus".to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::String
    }

    fn column_type() -> ColumnType {
        ColumnType::String(StringLen::N(16))
    }
}

impl Nullable for ReservationStatus {
    fn null() -> Value {
        Value::String(None)
    }
}

impl TryGetable for ReservationStatus {
    fn try_get_by<I: ColIdx>(result: &QueryResult, index: I) -> Result<Self, TryGetError> {
        let name = String::try_get_by(result, index)?;
        name.parse()
            .map_err(|error: String| TryGetError::DbErr(DbErr::Type(error)))
    }
}
