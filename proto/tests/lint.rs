//! The .proto conventions: versioned packages, a request and a response message per RPC named
//! after it, `_UNSPECIFIED = 0` enums with prefixed values, and a comment on every RPC, field,
//! enum and enum value (request and response messages are named after their RPC instead).

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use prost_types::FileDescriptorProto;

fn files() -> Vec<FileDescriptorProto> {
    let fds = protox::Compiler::new(["."])
        .unwrap()
        .include_source_info(true)
        .include_imports(false)
        .open_files(["fafnir/security/v1/security.proto", "fafnir/users/v1/users.proto"])
        .unwrap()
        .file_descriptor_set();
    fds.file
}

fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[test]
fn packages_are_versioned_and_rpcs_have_their_own_messages() {
    for f in files() {
        let pkg = f.package().to_owned();
        assert!(pkg.starts_with("fafnir.") && pkg.ends_with(".v1"), "{pkg}");
        assert_eq!(f.service.len(), 1, "{pkg}: one service per package");
        let mut inputs = std::collections::HashSet::new();
        for m in &f.service[0].method {
            let name = m.name();
            assert_eq!(m.input_type(), format!(".{pkg}.{name}Request"), "{pkg}.{name}");
            assert_eq!(m.output_type(), format!(".{pkg}.{name}Response"), "{pkg}.{name}");
            assert!(inputs.insert(m.input_type().to_owned()), "request type reused");
        }
        for e in &f.enum_type {
            let prefix = upper_snake(e.name());
            assert_eq!(e.value[0].number(), 0);
            assert_eq!(e.value[0].name(), format!("{prefix}_UNSPECIFIED"));
            for v in &e.value {
                assert!(v.name().starts_with(&format!("{prefix}_")), "{}", v.name());
            }
        }
    }
}

#[test]
fn everything_is_documented() {
    for f in files() {
        let info = f.source_code_info.clone().unwrap();
        // Paths of every declaration: 4 = message_type, 2 = field, 5 = enum_type, 2 = value,
        // 6 = service, 2 = method.
        let mut want: Vec<(Vec<i32>, String)> = Vec::new();
        for (i, m) in f.message_type.iter().enumerate() {
            for (j, fld) in m.field.iter().enumerate() {
                want.push((vec![4, i as i32, 2, j as i32], format!("{}.{}", m.name(), fld.name())));
            }
        }
        for (i, e) in f.enum_type.iter().enumerate() {
            want.push((vec![5, i as i32], e.name().to_owned()));
            for (j, v) in e.value.iter().enumerate() {
                want.push((vec![5, i as i32, 2, j as i32], v.name().to_owned()));
            }
        }
        for (i, s) in f.service.iter().enumerate() {
            for (j, m) in s.method.iter().enumerate() {
                want.push((vec![6, i as i32, 2, j as i32], format!("{}.{}", s.name(), m.name())));
            }
        }
        for (path, what) in want {
            let loc = info.location.iter().find(|l| l.path == path);
            let documented = loc
                .is_some_and(|l| !l.leading_comments().trim().is_empty() || !l.trailing_comments().trim().is_empty());
            assert!(documented, "{}: {what} has no comment", f.name());
        }
    }
}
