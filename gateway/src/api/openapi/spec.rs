//! What the route table says of each operation for the OpenAPI document, as constants
//! ([`OperationDoc`]), and how one becomes a utoipa [`Operation`]. The method and path
//! come from the route table entry that names the doc, so they are written once.
//!
//! The recurring pieces (the `call_id` parameter, `503 store_unavailable`, ...) are
//! constants here, written once and named by each operation that has them.

use c2c_plugin_api::ErrorBody;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

/// The schemas an operation names, collected into the document's components.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// A body's schema.
#[derive(Clone, Copy)]
pub enum Body {
    /// A named type: a `$ref` to it; it and the schemas it names go to the components.
    Named(fn(&mut Components) -> String),
    /// `{"type": "string"}`: text or bytes.
    Text,
    /// `{"type": "object"}`: any JSON object.
    Object,
}

/// [`Body::Named`] for `T`: what utoipa's `body = T` does.
pub const fn named<T: ToSchema>() -> Body {
    Body::Named(component::<T>)
}

fn component<T: ToSchema>(out: &mut Components) -> String {
    let name = T::name().into_owned();
    out.push((name.clone(), T::schema()));
    T::schemas(out);
    name
}

impl Body {
    fn schema(self, out: &mut Components) -> RefOr<Schema> {
        match self {
            Body::Named(collect) => Ref::from_schema_name(collect(out)).into(),
            Body::Text => ObjectBuilder::new().schema_type(Type::String).into(),
            Body::Object => ObjectBuilder::new().schema_type(Type::Object).into(),
        }
    }
}

/// Where a parameter goes.
#[derive(Clone, Copy)]
pub enum In {
    Path,
    Query,
    Header,
}

/// A parameter's schema.
#[derive(Clone, Copy)]
pub enum ParamSchema {
    Text,
    /// An optional header: `["string", "null"]`, as utoipa writes `Option<String>` there.
    NullableText,
    /// `YYYY-MM-DD`.
    Date,
    /// A 32-bit count within bounds.
    Count {
        min: u32,
        max: u32,
    },
    /// A position in a ledger: 0 to `i64::MAX` (what every store keeps).
    Seq,
}

/// One parameter.
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub required: bool,
    pub schema: ParamSchema,
    pub description: &'static str,
    pub example: Option<&'static str>,
}

impl Param {
    /// A path segment: required text with an example.
    pub const fn path(
        name: &'static str,
        description: &'static str,
        example: &'static str,
    ) -> Param {
        Param {
            name,
            location: In::Path,
            required: true,
            schema: ParamSchema::Text,
            description,
            example: Some(example),
        }
    }

    /// An optional query parameter.
    pub const fn query(
        name: &'static str,
        schema: ParamSchema,
        description: &'static str,
    ) -> Param {
        Param {
            name,
            location: In::Query,
            required: false,
            schema,
            description,
            example: None,
        }
    }

    /// A header parameter (text).
    pub const fn header(name: &'static str, required: bool, description: &'static str) -> Param {
        Param {
            name,
            location: In::Header,
            required,
            schema: if required {
                ParamSchema::Text
            } else {
                ParamSchema::NullableText
            },
            description,
            example: None,
        }
    }
}

/// A request body.
pub struct Request {
    pub content_type: &'static str,
    pub body: Body,
    pub description: Option<&'static str>,
}

impl Request {
    /// A JSON body of a named type.
    pub const fn json(body: Body) -> Request {
        Request {
            content_type: "application/json",
            body,
            description: None,
        }
    }
}

/// A response header's schema.
#[derive(Clone, Copy)]
pub enum HeaderSchema {
    /// `u64` seconds.
    Seconds,
    Text,
}

/// One response header.
pub struct ReplyHeader {
    pub name: &'static str,
    pub schema: HeaderSchema,
    pub description: &'static str,
}

/// A response's content.
#[derive(Clone, Copy)]
pub enum Content {
    None,
    /// `application/json`.
    Json(Body),
    /// One other media type.
    Typed(&'static str, Body),
    /// One of several media types.
    Alternatives(&'static [(&'static str, Body)]),
}

/// One response.
pub struct Reply {
    /// A status code, or `default`.
    pub status: &'static str,
    pub description: &'static str,
    pub content: Content,
    pub headers: &'static [ReplyHeader],
}

const RETRY_AFTER: ReplyHeader = ReplyHeader {
    name: "Retry-After",
    schema: HeaderSchema::Seconds,
    description: "Seconds to wait.",
};

impl Reply {
    /// A response with this content and no headers.
    pub const fn new(status: &'static str, description: &'static str, content: Content) -> Reply {
        Reply {
            status,
            description,
            content,
            headers: &[],
        }
    }

    /// `200` with a JSON body.
    pub const fn ok(description: &'static str, body: Body) -> Reply {
        Reply::new("200", description, Content::Json(body))
    }

    /// A response with no body.
    pub const fn empty(status: &'static str, description: &'static str) -> Reply {
        Reply::new(status, description, Content::None)
    }

    /// An error in the one shape ([`ErrorBody`]).
    pub const fn error(status: &'static str, description: &'static str) -> Reply {
        Reply::new(status, description, Content::Json(named::<ErrorBody>()))
    }

    /// An error that says when to retry (`Retry-After`).
    pub const fn retry(status: &'static str, description: &'static str) -> Reply {
        Reply {
            headers: &[RETRY_AFTER],
            ..Reply::error(status, description)
        }
    }
}

/// What the document says of one operation beyond its method and path.
pub struct OperationDoc {
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Empty for none.
    pub description: &'static str,
    pub params: &'static [Param],
    pub request: Option<Request>,
    /// Security scheme names, one alternative each; empty for none.
    pub security: &'static [&'static str],
    pub responses: &'static [Reply],
}

impl OperationDoc {
    /// The base the operations' constants fill in.
    pub const EMPTY: OperationDoc = OperationDoc {
        id: "",
        tag: "",
        summary: "",
        description: "",
        params: &[],
        request: None,
        security: &[],
        responses: &[],
    };

    /// The utoipa operation; the schemas it names are pushed to `components`.
    pub fn build(&self, components: &mut Components) -> Operation {
        let mut op = OperationBuilder::new()
            .tag(self.tag)
            .operation_id(Some(self.id))
            .summary(Some(self.summary))
            .description((!self.description.is_empty()).then_some(self.description));
        for p in self.params {
            op = op.parameter(build_param(p));
        }
        if let Some(req) = &self.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .description(req.description)
                    .content(
                        req.content_type,
                        ContentBuilder::new()
                            .schema(Some(req.body.schema(components)))
                            .build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        for scheme in self.security {
            op = op.security(SecurityRequirement::new(*scheme, Vec::<String>::new()));
        }
        for r in self.responses {
            let mut resp = ResponseBuilder::new().description(r.description);
            for h in r.headers {
                let schema: RefOr<Schema> = match h.schema {
                    HeaderSchema::Seconds => u64::schema(),
                    HeaderSchema::Text => String::schema(),
                };
                resp = resp.header(
                    h.name,
                    HeaderBuilder::new()
                        .schema(Some(schema))
                        .description(Some(h.description))
                        .build(),
                );
            }
            let contents: Vec<(&str, Body)> = match r.content {
                Content::None => Vec::new(),
                Content::Json(body) => vec![("application/json", body)],
                Content::Typed(content_type, body) => vec![(content_type, body)],
                Content::Alternatives(all) => all.to_vec(),
            };
            for (content_type, body) in contents {
                resp = resp.content(
                    content_type,
                    ContentBuilder::new()
                        .schema(Some(body.schema(components)))
                        .build(),
                );
            }
            op = op.response(r.status, resp.build());
        }
        op.build()
    }
}

fn build_param(p: &Param) -> utoipa::openapi::path::Parameter {
    let schema = match p.schema {
        ParamSchema::Text => ObjectBuilder::new().schema_type(Type::String),
        ParamSchema::NullableText => {
            ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        }
        ParamSchema::Date => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        ParamSchema::Count { min, max } => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(min))
            .maximum(Some(max)),
        ParamSchema::Seq => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(i64::MAX)),
    };
    ParameterBuilder::new()
        .name(p.name)
        .parameter_in(match p.location {
            In::Path => ParameterIn::Path,
            In::Query => ParameterIn::Query,
            In::Header => ParameterIn::Header,
        })
        .required(if p.required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(p.description))
        .schema(Some(schema))
        .example(p.example.map(|e| serde_json::Value::String(e.to_owned())))
        .build()
}
