// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The Permit2 entry point the proxy calls (signature transfer with witness).
interface ITestSignatureTransfer {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;
}

/// @title TestUptoPermit2Proxy (test-only)
/// @notice Stands in for x402's `x402UptoPermit2Proxy`, placed with `anvil_setCode` at its
/// canonical address (`0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002`). The payer signs a Permit2
/// witness transfer whose spender is this contract and whose witness
/// `Witness(address to,address facilitator,uint256 validAfter)` binds the recipient and the one
/// facilitator allowed to settle; `settle` moves any amount up to the signed maximum to that
/// recipient. Permit2 is its canonical address as a constant (no immutables, no constructor
/// state), so the copied runtime code works where it is placed. Not here: the EIP-2612 variant
/// `settleWithPermit` (our stack never offers the gas-sponsoring extension) and a reentrancy
/// guard (the only token it moves is the test USDC, which calls nobody back).
contract TestUptoPermit2Proxy {
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    event Settled();

    /// The settled amount is above the signed maximum.
    error AmountExceedsPermitted();
    /// The caller is not the facilitator the payer named.
    error UnauthorizedFacilitator();
    /// A zero settlement (it would only burn the nonce).
    error InvalidAmount();
    /// The owner is the zero address.
    error InvalidOwner();
    /// The recipient is the zero address.
    error InvalidDestination();
    /// Before the witness's `validAfter`.
    error PaymentTooEarly();

    ITestSignatureTransfer public constant PERMIT2 = ITestSignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);
    /// The rest of Permit2's witness type string: the witness member, then the referenced types in
    /// alphabetical order.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    /// Transfers `amount` (at most `permit.permitted.amount`) from `owner` to `witness.to`;
    /// only `witness.facilitator` may call it.
    function settle(
        ITestSignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        if (amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ITestSignatureTransfer.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
        emit Settled();
    }
}
