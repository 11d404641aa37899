// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// A stand-in for the official ERC-8004 v2 deployment (test-only, not audited): an ERC-1967 proxy
// that first points at a small owner-only UUPS placeholder and is then upgraded to the registry,
// as the official deployment is. What the registrar depends on behaves like the official
// contract: the implementation's constructor disables initializers, so the implementation itself
// answers `getVersion()` (pure) but has no `name()`; `register` makes the sender the agent's
// wallet; `setAgentWallet` wants an EIP-712 signature of the new wallet; a transfer clears the
// wallet; failures revert with the same custom errors (OpenZeppelin's names) or reason strings.
// Written for this project from the behaviour; every piece of state lives in its own ERC-7201
// namespace so that the placeholder and the registry share the proxy's storage safely.

interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

interface IERC1271 {
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4);
}

interface IProxiable {
    function proxiableUUID() external view returns (bytes32);
}

// The ERC-1967 implementation slot, shared by the proxy and the UUPS logic:
// keccak256("eip1967.proxy.implementation") - 1.
bytes32 constant IMPLEMENTATION_SLOT = 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;

event Upgraded(address indexed implementation);

error ERC1967InvalidImplementation(address implementation);
error ERC1967NonPayable();
error FailedCall();

function currentImplementation() view returns (address impl) {
    assembly {
        impl := sload(IMPLEMENTATION_SLOT)
    }
}

/// Points the proxy at `impl` and runs `data` (an initializer) in its context.
function upgradeImplementation(address impl, bytes memory data) {
    if (impl.code.length == 0) revert ERC1967InvalidImplementation(impl);
    assembly {
        sstore(IMPLEMENTATION_SLOT, impl)
    }
    emit Upgraded(impl);
    if (data.length > 0) {
        (bool ok, bytes memory ret) = impl.delegatecall(data);
        if (!ok) {
            if (ret.length > 0) {
                assembly {
                    revert(add(ret, 32), mload(ret))
                }
            }
            revert FailedCall();
        }
    } else if (msg.value > 0) {
        revert ERC1967NonPayable();
    }
}

/// @title Erc1967Proxy (test-only)
/// @notice Forwards every call to the implementation named in the ERC-1967 slot.
contract Erc1967Proxy {
    constructor(address implementation, bytes memory data) payable {
        upgradeImplementation(implementation, data);
    }

    fallback() external payable {
        address impl = currentImplementation();
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), impl, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }
}

/// Initializable + Ownable + UUPS, each with namespaced storage (the semantics of OpenZeppelin's
/// upgradeable building blocks, written out for this test contract).
abstract contract UupsOwnable {
    /// @custom:storage-location erc7201:obol.test.Initializable
    struct InitState {
        uint64 version;
        bool initializing;
    }

    /// @custom:storage-location erc7201:obol.test.Ownable
    struct OwnerState {
        address owner;
    }

    bytes32 private constant INIT_SLOT =
        keccak256(abi.encode(uint256(keccak256("obol.test.Initializable")) - 1)) & ~bytes32(uint256(0xff));
    bytes32 private constant OWNER_SLOT =
        keccak256(abi.encode(uint256(keccak256("obol.test.Ownable")) - 1)) & ~bytes32(uint256(0xff));

    address private immutable self = address(this);

    event Initialized(uint64 version);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error InvalidInitialization();
    error NotInitializing();
    error OwnableUnauthorizedAccount(address account);
    error OwnableInvalidOwner(address owner);
    error UUPSUnauthorizedCallContext();
    error UUPSUnsupportedProxiableUUID(bytes32 slot);

    function _init() private pure returns (InitState storage $) {
        bytes32 slot = INIT_SLOT;
        assembly {
            $.slot := slot
        }
    }

    function _owners() private pure returns (OwnerState storage $) {
        bytes32 slot = OWNER_SLOT;
        assembly {
            $.slot := slot
        }
    }

    /// Runs once per storage, at version 1 (the placeholder's `initialize`).
    modifier initializer() {
        _enter(1);
        _;
        _leave(1);
    }

    /// Runs once per storage for each version above the stored one (the registry's `initialize`).
    modifier reinitializer(uint64 version) {
        _enter(version);
        _;
        _leave(version);
    }

    modifier onlyInitializing() {
        if (!_init().initializing) revert NotInitializing();
        _;
    }

    modifier onlyOwner() {
        if (msg.sender != owner()) revert OwnableUnauthorizedAccount(msg.sender);
        _;
    }

    function _enter(uint64 version) private {
        InitState storage $ = _init();
        if ($.initializing || $.version >= version) revert InvalidInitialization();
        $.version = version;
        $.initializing = true;
    }

    function _leave(uint64 version) private {
        _init().initializing = false;
        emit Initialized(version);
    }

    /// For constructors of implementations: this storage can never be initialized.
    function _disableInitializers() internal {
        InitState storage $ = _init();
        if ($.initializing) revert InvalidInitialization();
        if ($.version != type(uint64).max) {
            $.version = type(uint64).max;
            emit Initialized(type(uint64).max);
        }
    }

    function _setOwner(address newOwner) internal onlyInitializing {
        if (newOwner == address(0)) revert OwnableInvalidOwner(address(0));
        _transferOwnership(newOwner);
    }

    function _transferOwnership(address newOwner) private {
        OwnerState storage $ = _owners();
        address old = $.owner;
        $.owner = newOwner;
        emit OwnershipTransferred(old, newOwner);
    }

    function owner() public view returns (address) {
        return _owners().owner;
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert OwnableInvalidOwner(address(0));
        _transferOwnership(newOwner);
    }

    /// The UUPS check that a new implementation is upgradeable too (only on the implementation
    /// itself, never through a proxy).
    function proxiableUUID() external view returns (bytes32) {
        if (address(this) != self) revert UUPSUnauthorizedCallContext();
        return IMPLEMENTATION_SLOT;
    }

    /// Owner-only upgrade, through the proxy only.
    function upgradeToAndCall(address newImplementation, bytes calldata data) external payable onlyOwner {
        if (address(this) == self || currentImplementation() != self) revert UUPSUnauthorizedCallContext();
        try IProxiable(newImplementation).proxiableUUID() returns (bytes32 slot) {
            if (slot != IMPLEMENTATION_SLOT) revert UUPSUnsupportedProxiableUUID(slot);
        } catch {
            revert ERC1967InvalidImplementation(newImplementation);
        }
        upgradeImplementation(newImplementation, data);
    }
}

/// @title MinimalUupsPlaceholder (test-only)
/// @notice What the proxy points at before the registry exists: an owner and the upgrade.
contract MinimalUupsPlaceholder is UupsOwnable {
    constructor() {
        _disableInitializers();
    }

    function initialize(address) external initializer {
        _setOwner(msg.sender);
    }

    function getVersion() external pure returns (string memory) {
        return "0.0.1";
    }
}

/// @title UpgradeableIdentityRegistry (test-only)
/// @notice The ERC-8004 v2 IdentityRegistry behind an ERC-1967 proxy: ERC-721 agents numbered
/// from 0, per-token URIs (ERC-4906), metadata with the reserved `agentWallet` key, the
/// EIP-712-verified wallet, and the standard's events in the standard's order.
contract UpgradeableIdentityRegistry is UupsOwnable {
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    /// @custom:storage-location erc7201:obol.test.ERC721
    struct TokenState {
        string name;
        string symbol;
        mapping(uint256 => address) owners;
        mapping(address => uint256) balances;
        mapping(uint256 => address) approvals;
        mapping(address => mapping(address => bool)) operators;
        mapping(uint256 => string) uris;
    }

    /// @custom:storage-location erc7201:obol.test.EIP712
    struct DomainState {
        bytes32 nameHash;
        bytes32 versionHash;
        string name;
        string version;
    }

    /// @custom:storage-location erc7201:erc8004.identity.registry
    struct AgentState {
        uint256 lastId;
        mapping(uint256 => mapping(string => bytes)) metadata;
    }

    bytes32 private constant TOKEN_SLOT =
        keccak256(abi.encode(uint256(keccak256("obol.test.ERC721")) - 1)) & ~bytes32(uint256(0xff));
    bytes32 private constant DOMAIN_SLOT =
        keccak256(abi.encode(uint256(keccak256("obol.test.EIP712")) - 1)) & ~bytes32(uint256(0xff));
    bytes32 private constant AGENT_SLOT =
        keccak256(abi.encode(uint256(keccak256("erc8004.identity.registry")) - 1)) & ~bytes32(uint256(0xff));

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant WALLET_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");
    bytes32 private constant WALLET_KEY_HASH = keccak256("agentWallet");
    string private constant WALLET_KEY = "agentWallet";
    uint256 private constant MAX_DEADLINE_DELAY = 300;
    // secp256k1n / 2: larger `s` values are the malleable twins of valid signatures.
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ERC-721
    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);
    // ERC-4906
    event MetadataUpdate(uint256 _tokenId);
    // ERC-5267
    event EIP712DomainChanged();
    // ERC-8004
    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
    event MetadataSet(
        uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue
    );
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);

    error ERC721InvalidOwner(address owner);
    error ERC721NonexistentToken(uint256 tokenId);
    error ERC721IncorrectOwner(address sender, uint256 tokenId, address owner);
    error ERC721InvalidSender(address sender);
    error ERC721InvalidReceiver(address receiver);
    error ERC721InsufficientApproval(address operator, uint256 tokenId);
    error ERC721InvalidApprover(address approver);
    error ERC721InvalidOperator(address operator);

    constructor() {
        _disableInitializers();
    }

    /// The upgrade's initializer: ERC-721 name and symbol, EIP-712 domain. Owner only, once.
    function initialize() external reinitializer(2) onlyOwner {
        TokenState storage t = _tokens();
        t.name = "AgentIdentity";
        t.symbol = "AGENT";
        DomainState storage d = _domain();
        d.name = "ERC8004IdentityRegistry";
        d.version = "1";
        d.nameHash = keccak256(bytes(d.name));
        d.versionHash = keccak256(bytes(d.version));
    }

    function getVersion() external pure returns (string memory) {
        return "2.0.0";
    }

    // === Registration ===

    function register() external returns (uint256 agentId) {
        agentId = _register("", false);
    }

    function register(string memory agentURI) external returns (uint256 agentId) {
        agentId = _register(agentURI, true);
    }

    function register(string memory agentURI, MetadataEntry[] memory metadata) external returns (uint256 agentId) {
        agentId = _register(agentURI, true);
        AgentState storage a = _agents();
        for (uint256 i; i < metadata.length; i++) {
            require(keccak256(bytes(metadata[i].metadataKey)) != WALLET_KEY_HASH, "reserved key");
            a.metadata[agentId][metadata[i].metadataKey] = metadata[i].metadataValue;
            emit MetadataSet(agentId, metadata[i].metadataKey, metadata[i].metadataKey, metadata[i].metadataValue);
        }
    }

    function setAgentURI(uint256 agentId, string calldata newURI) external {
        _requireAuthorized(agentId);
        _setTokenURI(agentId, newURI);
        emit URIUpdated(agentId, newURI, msg.sender);
    }

    // === Metadata and the agent's wallet ===

    function getMetadata(uint256 agentId, string memory metadataKey) external view returns (bytes memory) {
        return _agents().metadata[agentId][metadataKey];
    }

    function setMetadata(uint256 agentId, string memory metadataKey, bytes memory metadataValue) external {
        _requireAuthorized(agentId);
        require(keccak256(bytes(metadataKey)) != WALLET_KEY_HASH, "reserved key");
        _agents().metadata[agentId][metadataKey] = metadataValue;
        emit MetadataSet(agentId, metadataKey, metadataKey, metadataValue);
    }

    function getAgentWallet(uint256 agentId) external view returns (address) {
        return address(bytes20(_agents().metadata[agentId][WALLET_KEY]));
    }

    /// Makes `newWallet` the agent's wallet; `signature` is the new wallet's EIP-712 signature of
    /// `AgentWalletSet(agentId, newWallet, owner, deadline)` (an EOA's, else ERC-1271).
    function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature)
        external
    {
        address agentOwner = _requireAuthorized(agentId);
        require(newWallet != address(0), "bad wallet");
        require(block.timestamp <= deadline, "expired");
        require(deadline <= block.timestamp + MAX_DEADLINE_DELAY, "deadline too far");
        bytes32 digest = keccak256(
            abi.encodePacked(
                "\x19\x01",
                _domainSeparator(),
                keccak256(abi.encode(WALLET_TYPEHASH, agentId, newWallet, agentOwner, deadline))
            )
        );
        if (_recover(digest, signature) != newWallet) {
            (bool ok, bytes memory ret) =
                newWallet.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, signature)));
            require(
                ok && ret.length >= 32 && abi.decode(ret, (bytes4)) == IERC1271.isValidSignature.selector,
                "invalid wallet sig"
            );
        }
        _setWallet(agentId, abi.encodePacked(newWallet));
    }

    function unsetAgentWallet(uint256 agentId) external {
        _requireAuthorized(agentId);
        _setWallet(agentId, "");
    }

    function isAuthorizedOrOwner(address spender, uint256 agentId) external view returns (bool) {
        return _isAuthorized(_requireOwned(agentId), spender, agentId);
    }

    // === ERC-721 (+ metadata, ERC-165) ===

    function name() external view returns (string memory) {
        return _tokens().name;
    }

    function symbol() external view returns (string memory) {
        return _tokens().symbol;
    }

    function tokenURI(uint256 tokenId) external view returns (string memory) {
        _requireOwned(tokenId);
        return _tokens().uris[tokenId];
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 // ERC-165
            || interfaceId == 0x80ac58cd // ERC-721
            || interfaceId == 0x5b5e139f // ERC-721 metadata
            || interfaceId == 0x49064906; // ERC-4906
    }

    function balanceOf(address holder) external view returns (uint256) {
        if (holder == address(0)) revert ERC721InvalidOwner(address(0));
        return _tokens().balances[holder];
    }

    function ownerOf(uint256 tokenId) external view returns (address) {
        return _requireOwned(tokenId);
    }

    function approve(address to, uint256 tokenId) external {
        address holder = _requireOwned(tokenId);
        TokenState storage t = _tokens();
        if (msg.sender != holder && !t.operators[holder][msg.sender]) revert ERC721InvalidApprover(msg.sender);
        t.approvals[tokenId] = to;
        emit Approval(holder, to, tokenId);
    }

    function getApproved(uint256 tokenId) public view returns (address) {
        _requireOwned(tokenId);
        return _tokens().approvals[tokenId];
    }

    function setApprovalForAll(address operator, bool approved) external {
        if (operator == address(0)) revert ERC721InvalidOperator(operator);
        _tokens().operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address holder, address operator) public view returns (bool) {
        return _tokens().operators[holder][operator];
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        if (to == address(0)) revert ERC721InvalidReceiver(address(0));
        address holder = _requireOwned(tokenId);
        if (!_isAuthorized(holder, msg.sender, tokenId)) revert ERC721InsufficientApproval(msg.sender, tokenId);
        if (holder != from) revert ERC721IncorrectOwner(from, tokenId, holder);
        // The verified wallet does not travel with the agent: the new owner verifies again.
        _setWallet(tokenId, "");
        TokenState storage t = _tokens();
        delete t.approvals[tokenId];
        t.balances[from] -= 1;
        t.balances[to] += 1;
        t.owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        _checkReceiver(from, to, tokenId, data);
    }

    // === EIP-712 (ERC-5267) ===

    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory domainName,
            string memory domainVersion,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        DomainState storage d = _domain();
        return (hex"0f", d.name, d.version, block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // === Internals ===

    function _tokens() private pure returns (TokenState storage $) {
        bytes32 slot = TOKEN_SLOT;
        assembly {
            $.slot := slot
        }
    }

    function _domain() private pure returns (DomainState storage $) {
        bytes32 slot = DOMAIN_SLOT;
        assembly {
            $.slot := slot
        }
    }

    function _agents() private pure returns (AgentState storage $) {
        bytes32 slot = AGENT_SLOT;
        assembly {
            $.slot := slot
        }
    }

    function _register(string memory agentURI, bool withURI) private returns (uint256 agentId) {
        AgentState storage a = _agents();
        agentId = a.lastId++;
        a.metadata[agentId][WALLET_KEY] = abi.encodePacked(msg.sender);
        TokenState storage t = _tokens();
        t.owners[agentId] = msg.sender;
        t.balances[msg.sender] += 1;
        emit Transfer(address(0), msg.sender, agentId);
        _checkReceiver(address(0), msg.sender, agentId, "");
        if (withURI) _setTokenURI(agentId, agentURI);
        emit Registered(agentId, agentURI, msg.sender);
        emit MetadataSet(agentId, WALLET_KEY, WALLET_KEY, abi.encodePacked(msg.sender));
    }

    function _setTokenURI(uint256 agentId, string memory uri) private {
        _tokens().uris[agentId] = uri;
        emit MetadataUpdate(agentId);
    }

    function _setWallet(uint256 agentId, bytes memory value) private {
        _agents().metadata[agentId][WALLET_KEY] = value;
        emit MetadataSet(agentId, WALLET_KEY, WALLET_KEY, value);
    }

    function _requireOwned(uint256 tokenId) private view returns (address holder) {
        holder = _tokens().owners[tokenId];
        if (holder == address(0)) revert ERC721NonexistentToken(tokenId);
    }

    function _isAuthorized(address holder, address spender, uint256 tokenId) private view returns (bool) {
        TokenState storage t = _tokens();
        return spender != address(0)
            && (spender == holder || t.operators[holder][spender] || t.approvals[tokenId] == spender);
    }

    /// The owner, when the caller is the owner, an operator or the approved address.
    function _requireAuthorized(uint256 agentId) private view returns (address holder) {
        holder = _requireOwned(agentId);
        require(_isAuthorized(holder, msg.sender, agentId), "Not authorized");
    }

    function _domainSeparator() private view returns (bytes32) {
        DomainState storage d = _domain();
        return keccak256(abi.encode(DOMAIN_TYPEHASH, d.nameHash, d.versionHash, block.chainid, address(this)));
    }

    /// ECDSA recovery that never reverts: zero for a malformed or malleable signature.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _checkReceiver(address from, address to, uint256 tokenId, bytes memory data) private {
        if (to.code.length == 0) return;
        try IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data) returns (bytes4 ret) {
            if (ret != IERC721Receiver.onERC721Received.selector) revert ERC721InvalidReceiver(to);
        } catch {
            revert ERC721InvalidReceiver(to);
        }
    }
}
