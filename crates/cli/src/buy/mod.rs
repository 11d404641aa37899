//! `obol buy …`: buy pre-signed x402 authorizations from a seller for the cluster's buyer, and
//! inspect, refill and delete purchases.
//!
//! The key signs on this machine; only signed authorizations enter the cluster, in ConfigMaps
//! owned by a PurchaseRequest. Every refusal (price above `--max-price` or not confirmed, other
//! network or asset, a domain that is not the token's, plain http to another machine) comes
//! before anything is signed, exits 3, and writes nothing.

mod chain;
mod delete;
mod http;
mod inspect;
pub mod plan;
pub mod pool;
mod probe;
mod refill;
pub mod upto;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::kube_args::KubeArgs;

/// `obol buy`.
#[derive(Debug, Args)]
pub struct BuyArgs {
    #[command(subcommand)]
    command: BuyCommand,
    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
enum BuyCommand {
    /// Buy authorizations for an HTTP seller: probe its 402, sign, write a PurchaseRequest.
    Http(Box<http::HttpArgs>),
    /// List purchases.
    List(inspect::ListArgs),
    /// Show a purchase: remaining, held, spent, healed, expired; what the buyer last saw.
    Status(inspect::StatusArgs),
    /// Buy more authorizations for an existing purchase, on its terms.
    Refill(Box<refill::RefillArgs>),
    /// Delete a purchase and its unspent authorizations.
    Delete(delete::DeleteArgs),
}

/// The environment variable a `--keystore` password is read from when there is no
/// `--password-file` (a password is never a flag value: it would show in `ps` and the shell's
/// history).
pub const KEYSTORE_PASSWORD_ENV: &str = "OBOL_KEYSTORE_PASSWORD";

/// Where the signing key comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// File holding the payer's private key (`0x` + 64 hex digits); it is read here and never
    /// leaves this machine.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "keystore",
        conflicts_with = "keystore"
    )]
    key_file: Option<PathBuf>,
    /// Encrypted JSON keystore of the payer (version 3, as geth, `cast wallet` and most wallets
    /// write them), decrypted here; the password comes from --password-file or the
    /// OBOL_KEYSTORE_PASSWORD environment variable.
    #[arg(long, value_name = "FILE")]
    keystore: Option<PathBuf>,
    /// File whose content (one trailing newline ignored) is the --keystore password.
    #[arg(
        long,
        value_name = "FILE",
        requires = "keystore",
        conflicts_with = "key_file"
    )]
    password_file: Option<PathBuf>,
}

/// The keystore password: the file's content without one trailing newline, else the
/// environment variable's value. Errors name where it was looked for, never a value.
pub fn keystore_password(
    file: Option<Result<Vec<u8>, String>>,
    env: Option<std::ffi::OsString>,
) -> Result<Vec<u8>, String> {
    match (file, env) {
        (Some(Err(e)), _) => Err(format!("cannot read --password-file: {e}")),
        (Some(Ok(mut bytes)), _) => {
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            Ok(bytes)
        }
        (None, Some(v)) => Ok(v.into_encoded_bytes()),
        (None, None) => Err(format!(
            "--keystore needs its password: --password-file FILE or {KEYSTORE_PASSWORD_ENV}"
        )),
    }
}

impl KeyArgs {
    /// Reads the key. Errors never contain key material or the password.
    pub fn load(&self) -> anyhow::Result<obol_x402::PrivateKey> {
        if let Some(path) = &self.keystore {
            let file = self
                .password_file
                .as_ref()
                .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())));
            let password = keystore_password(file, std::env::var_os(KEYSTORE_PASSWORD_ENV))
                .map_err(|e| anyhow::anyhow!(e))?;
            return obol_x402::PrivateKey::from_keystore(path, &password)
                .map_err(|e| anyhow::anyhow!("--keystore {}: {e}", path.display()));
        }
        let Some(path) = &self.key_file else {
            anyhow::bail!("give --key-file or --keystore");
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --key-file {}: {e}", path.display()))?;
        text.parse()
            .map_err(|e| anyhow::anyhow!("--key-file {}: {e}", path.display()))
    }
}

/// Parses `7d`, `12h`, `30m`, `90s`, or plain seconds.
pub fn parse_validity(s: &str) -> Result<Duration, String> {
    if let Some(days) = s.strip_suffix('d') {
        let n: u64 = days
            .parse()
            .map_err(|_| format!("invalid duration {s:?} (e.g. 7d, 12h)"))?;
        return Ok(Duration::from_secs(n * 86_400));
    }
    crate::sell::parse_duration(s)
}

impl BuyArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self { command, kube } = self;
        match command {
            BuyCommand::Http(args) => args.run(&kube).await,
            BuyCommand::List(args) => args.run(&kube).await,
            BuyCommand::Status(args) => args.run(&kube).await,
            BuyCommand::Refill(args) => args.run(&kube).await,
            BuyCommand::Delete(args) => args.run(&kube).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_durations() {
        assert_eq!(parse_validity("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_validity("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_validity("90"), Ok(Duration::from_secs(90)));
        assert!(parse_validity("xd").is_err());
        assert!(parse_validity("1w").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Keys {
        #[command(flatten)]
        key: KeyArgs,
    }

    #[test]
    fn one_key_source_and_a_password_never_from_a_flag_value() {
        use clap::Parser as _;
        let parse = |args: &[&str]| Keys::try_parse_from([&["t"], args].concat());
        assert!(parse(&["--key-file=k"]).is_ok());
        assert!(parse(&["--keystore=k.json"]).is_ok());
        assert!(parse(&["--keystore=k.json", "--password-file=p"]).is_ok());
        assert!(parse(&[]).is_err(), "a key source is required");
        assert!(parse(&["--key-file=k", "--keystore=k.json"]).is_err());
        assert!(parse(&["--key-file=k", "--password-file=p"]).is_err());
        assert!(parse(&["--keystore=k.json", "--password=x"]).is_err());
    }

    #[test]
    fn keystore_passwords_come_from_the_file_then_the_environment() {
        let env = || Some(std::ffi::OsString::from("from env"));
        type FileRead = Option<Result<Vec<u8>, String>>;
        let table: [(FileRead, _, Result<&[u8], ()>); 6] = [
            (Some(Ok(b"pw\n".to_vec())), env(), Ok(b"pw")),
            (Some(Ok(b"pw\r\n".to_vec())), None, Ok(b"pw")),
            (Some(Ok(b"pw\n\n".to_vec())), None, Ok(b"pw\n")),
            (None, env(), Ok(b"from env")),
            (Some(Err("gone".into())), env(), Err(())),
            (None, None, Err(())),
        ];
        for (file, env, want) in table {
            let got = keystore_password(file, env);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w)),
                Err(()) => assert!(got.is_err()),
            }
        }
        let missing = keystore_password(None, None).unwrap_err();
        assert!(missing.contains(KEYSTORE_PASSWORD_ENV), "{missing}");
    }

    #[test]
    fn a_keystore_signs_as_its_key_and_errors_keep_the_secrets() {
        use alloy::signers::local::PrivateKeySigner;
        use clap::Parser as _;
        // Public Anvil dev key #1 (test-only).
        let key = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let dir = std::env::temp_dir().join(format!("obol-cli-keystore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        PrivateKeySigner::encrypt_keystore(
            &dir,
            &mut rand08::thread_rng(),
            &secret,
            "s3cret-pw",
            Some("payer.json"),
        )
        .unwrap();
        std::fs::write(dir.join("pw"), "s3cret-pw\n").unwrap();
        std::fs::write(dir.join("bad"), "not-it\n").unwrap();
        let ks = dir.join("payer.json").display().to_string();
        let load = |pw: &str| {
            let pw = dir.join(pw).display().to_string();
            Keys::try_parse_from(["t", "--keystore", &ks, "--password-file", &pw])
                .unwrap()
                .key
                .load()
        };
        let want: obol_x402::PrivateKey = format!("0x{key}").parse().unwrap();
        assert_eq!(load("pw").unwrap().address(), want.address());
        for e in [load("bad").unwrap_err(), load("absent").unwrap_err()] {
            let text = format!("{e:#}");
            assert!(!text.contains(key) && !text.contains("s3cret"), "{text}");
            assert!(text.contains("--"), "names the flag: {text}");
        }
        assert!(format!("{:#}", load("bad").unwrap_err()).contains("wrong password"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
