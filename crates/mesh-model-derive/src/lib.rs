//! `#[derive(Model)]`: turns a plain struct into a document type of `mesh-model`.
//!
//! The derive is the single place where a standard's key spelling meets a Rust field, so the same
//! declaration drives both directions:
//! - `FromNode`: read a located YAML/JSON object, collecting *every* problem (missing required key,
//!   wrong type, unknown key with the closest valid one) instead of stopping at the first;
//! - `serde::Serialize`: write the object back with the standard's key names, unknown keys included,
//!   so a parse → serialise → parse round trip gives an equal value.
//!
//! What it deliberately does not do: conditional rules (a server's keys depend on its `type`, a
//! property's options on its `logicalType`). Those live in hand-written `check` functions next to the
//! types, named with `#[model(check = path)]`, because they read better as code than as attributes.
//! A check is `fn(&Node, &mut Cx)`: it reads the located object, so it runs (and reports) even when
//! a required key is missing and no typed value can be built.
//!
//! Field kinds are decided from the field's type:
//! - `Option<T>`: optional key (`#[model(required)]` makes a missing key an error but keeps the object;
//!   `#[model(with = path)]` reads it with `fn(&Node, &mut Cx) -> Option<T>` instead of `FromNode`);
//! - `Vec<T>`: optional list, absent = empty;
//! - `#[model(since_3_2)]`: a key ODCS v3.2.0 added, refused in documents of older versions;
//! - `#[model(extra)]` field (an `Extra` map): every key the struct does not define;
//! - anything else: required key; the object is dropped from the model when it is missing.
//!
//! Unknown keys are errors, warnings with `#[model(open)]` (objects the standard leaves open), or
//! kept silently with `#[model(silent)]` when the struct's `check` judges them in context.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, Type, parse_macro_input};

#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

#[derive(Default)]
struct StructAttrs {
    what: Option<String>,
    open: bool,
    silent: bool,
    check: Option<syn::Path>,
}

#[derive(Default)]
struct FieldAttrs {
    rename: Option<String>,
    required: bool,
    extra: bool,
    deprecated: Option<String>,
    with: Option<syn::Path>,
    since_3_2: bool,
}

enum Kind {
    Optional,
    List,
    Required,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "Model can only be derived for structs",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(name, "Model needs named fields"));
    };
    let sattrs = struct_attrs(input)?;
    let what = sattrs.what.ok_or_else(|| {
        syn::Error::new_spanned(
            name,
            "missing #[model(what = \"...\")]: the name users read in errors",
        )
    })?;

    let mut keys = Vec::new();
    let mut reads = Vec::new();
    let mut builds = Vec::new();
    let mut sers = Vec::new();
    let mut extra_field = None;

    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named fields have identifiers");
        let fattrs = field_attrs(field)?;
        let local = quote::format_ident!("__f_{}", ident);
        if fattrs.extra {
            extra_field = Some(ident.clone());
            continue;
        }
        let key = fattrs
            .rename
            .unwrap_or_else(|| camel_case(&ident.to_string()));
        keys.push(key.clone());
        if fattrs.since_3_2 {
            reads.push(quote! { __r.since_3_2(cx, #key); });
        }
        if let Some(message) = &fattrs.deprecated {
            reads.push(quote! { __r.deprecated(cx, #key, #message); });
        }
        match kind_of(&field.ty) {
            Kind::Optional => {
                let read = match (&fattrs.with, fattrs.required) {
                    (Some(with), _) => quote! { let #local = __r.optional_with(cx, #key, #with); },
                    (None, true) => quote! { let #local = __r.required(cx, #key); },
                    (None, false) => quote! { let #local = __r.optional(cx, #key); },
                };
                reads.push(read);
                builds.push(quote! { #ident: #local });
                sers.push(quote! {
                    if let ::core::option::Option::Some(__v) = &self.#ident {
                        __m.serialize_entry(#key, __v)?;
                    }
                });
            }
            Kind::List => {
                reads.push(quote! { let #local = __r.list(cx, #key); });
                builds.push(quote! { #ident: #local });
                sers.push(quote! {
                    if !self.#ident.is_empty() {
                        __m.serialize_entry(#key, &self.#ident)?;
                    }
                });
            }
            Kind::Required => {
                reads.push(quote! { let #local = __r.required(cx, #key); });
                builds.push(quote! { #ident: #local? });
                sers.push(quote! { __m.serialize_entry(#key, &self.#ident)?; });
            }
        }
    }

    let Some(extra) = extra_field else {
        return Err(syn::Error::new_spanned(
            name,
            "Model structs keep unknown keys: add a `#[model(extra)] extra: Extra` field",
        ));
    };
    let unknown = if sattrs.silent {
        quote! { ::mesh_model::de::UnknownKeys::Keep }
    } else if sattrs.open {
        quote! { ::mesh_model::de::UnknownKeys::Warn }
    } else {
        quote! { ::mesh_model::de::UnknownKeys::Error }
    };
    let check = sattrs.check.map(|path| quote! { #path(node, cx); });
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    Ok(quote! {
        impl #impl_generics #name #ty_generics #where_clause {
            /// The keys this object defines, spelled as in the standard.
            pub const KEYS: &'static [&'static str] = &[#(#keys),*];
            /// What users call this object in messages.
            pub const WHAT: &'static str = #what;
        }

        impl #impl_generics ::mesh_model::de::FromNode for #name #ty_generics #where_clause {
            const EXPECTED: &'static str = "an object";

            fn from_node(
                node: &::mesh_model::source::Node,
                cx: &mut ::mesh_model::de::Cx,
            ) -> ::core::option::Option<Self> {
                let mut __r = ::mesh_model::de::ObjectReader::new(node, cx, #what)?;
                #(#reads)*
                let __extra = __r.finish(cx, Self::KEYS, #unknown);
                #check
                ::core::option::Option::Some(Self { #(#builds,)* #extra: __extra })
            }
        }

        impl #impl_generics ::mesh_model::de::__serde::Serialize for #name #ty_generics #where_clause {
            fn serialize<__S>(&self, __s: __S) -> ::core::result::Result<__S::Ok, __S::Error>
            where
                __S: ::mesh_model::de::__serde::Serializer,
            {
                use ::mesh_model::de::__serde::ser::SerializeMap as _;
                let mut __m = __s.serialize_map(::core::option::Option::None)?;
                #(#sers)*
                for (__k, __v) in &self.#extra {
                    __m.serialize_entry(__k, __v)?;
                }
                __m.end()
            }
        }
    })
}

fn struct_attrs(input: &DeriveInput) -> syn::Result<StructAttrs> {
    let mut out = StructAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("model")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("what") {
                out.what = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("open") {
                out.open = true;
            } else if meta.path.is_ident("silent") {
                out.silent = true;
            } else if meta.path.is_ident("check") {
                out.check = Some(meta.value()?.parse::<syn::Path>()?);
            } else {
                return Err(
                    meta.error("unknown model attribute; expected what, open, silent or check")
                );
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("model")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                out.rename = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("required") {
                out.required = true;
            } else if meta.path.is_ident("extra") {
                out.extra = true;
            } else if meta.path.is_ident("deprecated") {
                out.deprecated = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if meta.path.is_ident("with") {
                out.with = Some(meta.value()?.parse::<syn::Path>()?);
            } else if meta.path.is_ident("since_3_2") {
                out.since_3_2 = true;
            } else {
                return Err(meta.error(
                    "unknown model field attribute; expected rename, required, extra, deprecated, with or since_3_2",
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn kind_of(ty: &Type) -> Kind {
    if let Type::Path(path) = ty
        && let Some(last) = path.path.segments.last()
    {
        if last.ident == "Option" {
            return Kind::Optional;
        }
        if last.ident == "Vec" {
            return Kind::List;
        }
    }
    Kind::Required
}

/// `sla_properties` -> `slaProperties`, the spelling every Bitol standard uses.
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for ch in snake.trim_start_matches("r#").chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}
