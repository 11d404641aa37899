// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The ERC-20 calls Permit2 makes.
interface ITestPermit2Token {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title TestPermit2 (test-only)
/// @notice The signature-transfer half of Uniswap's Permit2, written for local chains and
/// placed with `anvil_setCode` at Permit2's canonical address
/// (`0x000000000022D473030F116dDEE9F6B43aC78BA3`): `permitWitnessTransferFrom`, the unordered
/// nonce bitmap and `invalidateUnorderedNonces`, EOA signatures, with Permit2's EIP-712 domain
/// (`name` "Permit2", no `version`), type strings and error names. The domain separator is computed per call from `block.chainid` and `address(this)`,
/// so the copied runtime code verifies signatures for the address it sits at; there are no
/// immutables and no constructor state. The allowance-transfer half is not here.
contract TestPermit2 {
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

    event UnorderedNonceInvalidation(address indexed owner, uint256 word, uint256 mask);

    /// The permit's deadline has passed.
    error SignatureExpired(uint256 signatureDeadline);
    /// More was requested than the permit allows.
    error InvalidAmount(uint256 maxAmount);
    /// The nonce was used or invalidated.
    error InvalidNonce();
    /// Not a 65-byte EOA signature.
    error InvalidSignatureLength();
    /// The signature recovers to no address.
    error InvalidSignature();
    /// The signature recovers to someone other than the owner.
    error InvalidSigner();
    /// The token refused the transfer.
    error TransferFromFailed();

    bytes32 public constant TOKEN_PERMISSIONS_TYPEHASH = keccak256("TokenPermissions(address token,uint256 amount)");
    /// The witness variant's type string starts here; the caller supplies the rest
    /// (`<Witness type> witness)` followed by the referenced types in alphabetical order).
    string public constant PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH_STUB =
        "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("Permit2");

    /// owner => word position => 256 nonce bits (a set bit is a used nonce).
    mapping(address => mapping(uint256 => uint256)) public nonceBitmap;

    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, block.chainid, address(this)));
    }

    /// Transfers `requestedAmount` of the permitted token from `owner` to `transferDetails.to`;
    /// the caller is the spender the owner signed for, and the caller's witness is hashed into the
    /// signed message: `witness` is the witness struct's EIP-712 hash, `witnessTypeString`
    /// completes the type after Permit2's stub.
    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external {
        bytes32 typeHash = keccak256(abi.encodePacked(PERMIT_WITNESS_TRANSFER_FROM_TYPEHASH_STUB, witnessTypeString));
        bytes32 structHash = keccak256(
            abi.encode(
                typeHash, _tokenPermissionsHash(permit.permitted), msg.sender, permit.nonce, permit.deadline, witness
            )
        );
        _transfer(permit, transferDetails, owner, structHash, signature);
    }

    /// Marks the nonces of `mask` in word `wordPos` of the caller as used.
    function invalidateUnorderedNonces(uint256 wordPos, uint256 mask) external {
        nonceBitmap[msg.sender][wordPos] |= mask;
        emit UnorderedNonceInvalidation(msg.sender, wordPos, mask);
    }

    function _tokenPermissionsHash(TokenPermissions calldata permitted) private pure returns (bytes32) {
        return keccak256(abi.encode(TOKEN_PERMISSIONS_TYPEHASH, permitted.token, permitted.amount));
    }

    function _transfer(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 structHash,
        bytes calldata signature
    ) private {
        if (block.timestamp > permit.deadline) revert SignatureExpired(permit.deadline);
        if (transferDetails.requestedAmount > permit.permitted.amount) revert InvalidAmount(permit.permitted.amount);
        _useNonce(owner, permit.nonce);
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
        _checkSignature(owner, digest, signature);
        (bool ok, bytes memory answer) = permit.permitted.token.call(
            abi.encodeCall(ITestPermit2Token.transferFrom, (owner, transferDetails.to, transferDetails.requestedAmount))
        );
        if (!ok || (answer.length != 0 && !abi.decode(answer, (bool)))) revert TransferFromFailed();
    }

    /// Flips the nonce's bit; a bit that was already set means the nonce was used.
    function _useNonce(address owner, uint256 nonce) private {
        uint256 wordPos = nonce >> 8;
        uint256 bit = 1 << (nonce & 0xff);
        uint256 flipped = nonceBitmap[owner][wordPos] ^= bit;
        if (flipped & bit == 0) revert InvalidNonce();
    }

    /// EOA signatures only (65 bytes `r‖s‖v`, what every x402 client sends from a key); Permit2's
    /// EIP-2098 and ERC-1271 paths are not needed by the tests and are not here.
    function _checkSignature(address owner, bytes32 digest, bytes calldata signature) private pure {
        if (signature.length != 65) revert InvalidSignatureLength();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
        if (signer != owner) revert InvalidSigner();
    }
}
