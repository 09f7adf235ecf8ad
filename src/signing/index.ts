export { canonicalJson, compareFiles, digestFolder, SIGNATURE_FILE, SYMLINK_PREFIX, type FileChanges, type FileList, type FolderDigest } from './digest.js';
export { generateKeyFiles, keyIdOf, parsePublicKey, readPrivateKey, type KeyFiles } from './keys.js';
export { parseSignatureFile, signedBytes, signPlugin, verifyPlugin, type SignatureFile, type SignResult, type Verification } from './signature.js';
