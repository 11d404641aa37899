//! The part of the ERC-8004 v2 IdentityRegistry the registrar calls, declared from the published
//! interface (`erc8004.md` §4–§5), and the custom errors the official contract (OpenZeppelin's
//! ERC-721, Ownable, Initializable, UUPS/ERC-1967 and ECDSA building blocks) can revert with, so
//! that a revert reaches the status message by name. Independent of the test contracts in
//! `contracts/out`, which only tests deploy.

#![allow(missing_docs)]

use alloy::sol;
use alloy::sol_types::{Panic, Revert, SolError as _, SolInterface as _};

sol! {
    #[sol(rpc)]
    interface IIdentityRegistry {
        event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
        event MetadataSet(
            uint256 indexed agentId,
            string indexed indexedMetadataKey,
            string metadataKey,
            bytes metadataValue
        );
        event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);

        function register(string agentURI) external returns (uint256 agentId);
        function setAgentURI(uint256 agentId, string newURI) external;
        function tokenURI(uint256 agentId) external view returns (string);
        function ownerOf(uint256 agentId) external view returns (address);
        function name() external view returns (string);
        function getVersion() external pure returns (string);
        function getMetadata(uint256 agentId, string metadataKey) external view returns (bytes);
        function setMetadata(uint256 agentId, string metadataKey, bytes metadataValue) external;
        function getAgentWallet(uint256 agentId) external view returns (address);
        function unsetAgentWallet(uint256 agentId) external;
    }
}

sol! {
    /// Custom errors of the official registry's building blocks (OpenZeppelin 5.x names).
    interface RegistryErrors {
        error ERC721InvalidOwner(address owner);
        error ERC721NonexistentToken(uint256 tokenId);
        error ERC721IncorrectOwner(address sender, uint256 tokenId, address owner);
        error ERC721InvalidSender(address sender);
        error ERC721InvalidReceiver(address receiver);
        error ERC721InsufficientApproval(address operator, uint256 tokenId);
        error ERC721InvalidApprover(address approver);
        error ERC721InvalidOperator(address operator);
        error OwnableUnauthorizedAccount(address account);
        error OwnableInvalidOwner(address owner);
        error InvalidInitialization();
        error NotInitializing();
        error UUPSUnauthorizedCallContext();
        error UUPSUnsupportedProxiableUUID(bytes32 slot);
        error ERC1967InvalidImplementation(address implementation);
        error ERC1967NonPayable();
        error AddressEmptyCode(address target);
        error FailedCall();
        error ECDSAInvalidSignature();
        error ECDSAInvalidSignatureLength(uint256 length);
        error ECDSAInvalidSignatureS(bytes32 s);
    }
}

/// The `ERC-721` token name of the official registry, answered only through the proxy (the
/// implementation's initializers are disabled, so its own storage has no name).
pub const REGISTRY_NAME: &str = "AgentIdentity";

/// A revert's reason in words: the `Error(string)` message, a `Panic` code, or a known custom
/// error by name with its arguments (`ERC721NonexistentToken(tokenId: 7)`). `None` for data no
/// decoder recognises.
pub fn revert_reason(data: &[u8]) -> Option<String> {
    if let Ok(revert) = Revert::abi_decode(data) {
        return Some(revert.reason);
    }
    if let Ok(panic) = Panic::abi_decode(data) {
        return Some(panic.to_string());
    }
    let error = RegistryErrors::RegistryErrorsErrors::abi_decode(data).ok()?;
    Some(describe(&error))
}

fn describe(e: &RegistryErrors::RegistryErrorsErrors) -> String {
    use RegistryErrors::RegistryErrorsErrors as E;
    match e {
        E::ERC721InvalidOwner(x) => format!("ERC721InvalidOwner(owner: {})", x.owner),
        E::ERC721NonexistentToken(x) => format!("ERC721NonexistentToken(tokenId: {})", x.tokenId),
        E::ERC721IncorrectOwner(x) => format!(
            "ERC721IncorrectOwner(sender: {}, tokenId: {}, owner: {})",
            x.sender, x.tokenId, x.owner
        ),
        E::ERC721InvalidSender(x) => format!("ERC721InvalidSender(sender: {})", x.sender),
        E::ERC721InvalidReceiver(x) => format!("ERC721InvalidReceiver(receiver: {})", x.receiver),
        E::ERC721InsufficientApproval(x) => format!(
            "ERC721InsufficientApproval(operator: {}, tokenId: {})",
            x.operator, x.tokenId
        ),
        E::ERC721InvalidApprover(x) => format!("ERC721InvalidApprover(approver: {})", x.approver),
        E::ERC721InvalidOperator(x) => format!("ERC721InvalidOperator(operator: {})", x.operator),
        E::OwnableUnauthorizedAccount(x) => {
            format!("OwnableUnauthorizedAccount(account: {})", x.account)
        }
        E::OwnableInvalidOwner(x) => format!("OwnableInvalidOwner(owner: {})", x.owner),
        E::InvalidInitialization(_) => "InvalidInitialization()".into(),
        E::NotInitializing(_) => "NotInitializing()".into(),
        E::UUPSUnauthorizedCallContext(_) => "UUPSUnauthorizedCallContext()".into(),
        E::UUPSUnsupportedProxiableUUID(x) => {
            format!("UUPSUnsupportedProxiableUUID(slot: {})", x.slot)
        }
        E::ERC1967InvalidImplementation(x) => format!(
            "ERC1967InvalidImplementation(implementation: {})",
            x.implementation
        ),
        E::ERC1967NonPayable(_) => "ERC1967NonPayable()".into(),
        E::AddressEmptyCode(x) => format!("AddressEmptyCode(target: {})", x.target),
        E::FailedCall(_) => "FailedCall()".into(),
        E::ECDSAInvalidSignature(_) => "ECDSAInvalidSignature()".into(),
        E::ECDSAInvalidSignatureLength(x) => {
            format!("ECDSAInvalidSignatureLength(length: {})", x.length)
        }
        E::ECDSAInvalidSignatureS(x) => format!("ECDSAInvalidSignatureS(s: {})", x.s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, U256, address};

    #[test]
    fn custom_errors_are_named_with_their_arguments() {
        let owner = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                RegistryErrors::ERC721NonexistentToken {
                    tokenId: U256::from(7),
                }
                .abi_encode(),
                "ERC721NonexistentToken(tokenId: 7)",
            ),
            (
                RegistryErrors::ERC721InvalidReceiver {
                    receiver: Address::ZERO,
                }
                .abi_encode(),
                "ERC721InvalidReceiver(receiver: 0x0000000000000000000000000000000000000000)",
            ),
            (
                RegistryErrors::OwnableUnauthorizedAccount { account: owner }.abi_encode(),
                "OwnableUnauthorizedAccount(account: 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266)",
            ),
            (
                RegistryErrors::InvalidInitialization {}.abi_encode(),
                "InvalidInitialization()",
            ),
            (
                RegistryErrors::ECDSAInvalidSignatureLength {
                    length: U256::from(64),
                }
                .abi_encode(),
                "ECDSAInvalidSignatureLength(length: 64)",
            ),
            (
                Revert::from("Not authorized").abi_encode(),
                "Not authorized",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(revert_reason(&data).as_deref(), Some(want));
        }
    }

    #[test]
    fn unknown_revert_data_is_not_guessed() {
        assert_eq!(revert_reason(&[0xde, 0xad, 0xbe, 0xef, 0, 1]), None);
        assert_eq!(revert_reason(&[]), None);
    }
}
