use serde_json::{Map, Value};
use std::fmt;

/// A coded error: what a method handler returns to fail with a code of its own, and what
/// [`Hub::call`](crate::Hub::call) returns when the call failed.
///
/// Any `std::error::Error` converts into it with `?`, as `LM_PLUGIN_ERROR` with the
/// error's text as the message. (For that conversion to exist, this type itself does not
/// implement `std::error::Error`; [`Error::into_std`] gives one that does.)
#[derive(Clone, PartialEq)]
pub struct Error {
    /// An `LM_*` code such as `LM_INVALID_ARGUMENT`, or one of the plugin's own.
    pub code: String,
    pub message: String,
    /// Structured details; `Value::Null` when there are none.
    pub details: Value,
}

impl Error {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            code: code.into(),
            message: message.into(),
            details: Value::Null,
        }
    }

    /// The same error with structured details attached.
    pub fn with_details(mut self, details: Value) -> Error {
        self.details = details;
        self
    }

    /// `LM_INVALID_ARGUMENT`: the method was called with arguments it does not accept.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new("LM_INVALID_ARGUMENT", message)
    }

    /// `LM_PLUGIN_ERROR`: a failure without a more specific code.
    pub fn plugin_error(message: impl Into<String>) -> Error {
        Error::new("LM_PLUGIN_ERROR", message)
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &Value {
        &self.details
    }

    /// A boxed `std::error::Error` carrying this error's text, for code that wants one.
    pub fn into_std(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(StdError(self))
    }

    /// The `{code, message, details}` object sent on the wire.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::String(self.code.clone()));
        m.insert("message".into(), Value::String(self.message.clone()));
        if !self.details.is_null() {
            m.insert("details".into(), self.details.clone());
        }
        Value::Object(m)
    }

    /// The same object, taking the details instead of copying them (copying a value recurses
    /// once per level of its depth).
    pub(crate) fn into_json(self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::String(self.code));
        m.insert("message".into(), Value::String(self.message));
        if !self.details.is_null() {
            m.insert("details".into(), self.details);
        }
        Value::Object(m)
    }

    /// Read a wire error object; anything malformed becomes `LM_PLUGIN_ERROR`.
    pub fn from_json(v: &Value) -> Error {
        let code = v.get("code").and_then(Value::as_str).unwrap_or("LM_PLUGIN_ERROR");
        let message = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the call failed without a message");
        Error::new(code, message).with_details(v.get("details").cloned().unwrap_or(Value::Null))
    }

    /// `LM_CONTROLLER_UNAVAILABLE`: not connected to the hub, or the connection closed.
    pub(crate) fn disconnected(message: impl Into<String>) -> Error {
        Error::new("LM_CONTROLLER_UNAVAILABLE", message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.details.is_null() {
            write!(f, " {}", self.details)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Error {
        Error::plugin_error(e.to_string())
    }
}

impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(e: Error) -> Self {
        e.into_std()
    }
}

impl From<Error> for Value {
    fn from(e: Error) -> Value {
        e.to_json()
    }
}

struct StdError(Error);

impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StdError {}
