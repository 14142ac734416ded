//! Configuration text the unit tests start from.

/// A PMIPv6 access gateway (MAG) on `acc0` with one LMA, `lma1` at
/// 10.255.0.10 (no ESP), and no profile yet: its access link's default
/// profile is `default_profile`, for the test to add.
pub(crate) fn mag_toml(default_profile: &str) -> String {
    format!(
        r#"
role = "access"
protocol = "pmipv6"
[interfaces]
core = "core0"
[[interfaces.access]]
name = "acc0"
gateway = "10.64.0.1/24"
default_profile = "{default_profile}"
[addresses]
ipv4 = "10.255.0.1"
[[peers]]
name = "lma1"
address = "10.255.0.10"
insecure = true
"#
    )
}

/// [`mag_toml`] with its default profile, `default`, anchored at `lma1`.
pub(crate) fn mag_toml_with_profile() -> String {
    let base = mag_toml("default");
    format!("{base}[[profiles]]\nname = \"default\"\nanchor = \"lma1\"\n")
}
