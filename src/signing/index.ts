export { canonicalJson, compareFiles, digestFolder, digestFolderAsync, SIGNATURE_FILE, SYMLINK_PREFIX, type FileChanges, type FileList, type FolderDigest } from './digest.js';
export { generateKeyFiles, keyIdOf, parsePublicKey, readPrivateKey, type KeyFiles } from './keys.js';
export { parseSignatureFile, signedBytes, type SignatureFile, type SignatureVersion } from './signature-file.js';
export { mutablePaths, signedContentOf, signPlugin, verifyPlugin, verifyPluginAsync, type SignedContent, type SignResult, type Verification } from './signature.js';
