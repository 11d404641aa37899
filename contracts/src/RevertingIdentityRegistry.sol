// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RevertingIdentityRegistry (test-only)
/// @notice Looks like an ERC-8004 IdentityRegistry (same `getVersion` and `name`) but refuses every write with
/// a reason string: the registrar must report such a revert as a permanent failure, not retry it.
contract RevertingIdentityRegistry {
    function getVersion() external pure returns (string memory) {
        return "2.0.0";
    }

    function name() external pure returns (string memory) {
        return "AgentIdentity";
    }

    function register(string calldata) external pure returns (uint256) {
        revert("registrations closed");
    }

    function setAgentURI(uint256, string calldata) external pure {
        revert("registrations closed");
    }
}
