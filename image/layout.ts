// Where things live inside an image (and so inside an installed slot). The binary
// finds its neighbours relative to its own path, so a slot can sit anywhere.
export const IMAGE_BINARY = 'bin/branchline';
/** Native addons sit beside the binary, loaded from there by absolute path. */
export const IMAGE_ADDON_DIR = 'bin';
/** Public keys this image trusts for the *next* update. */
export const IMAGE_KEYS_DIR = 'keys';
/** Name and version the binary reports (`branchline --version`). */
export const IMAGE_PACKAGE_JSON = 'package.json';
export const IMAGE_DEFAULT_CONFIG = 'config/default.yaml';
export const IMAGE_SYSTEMD_DIR = 'systemd';
export const IMAGE_PROMPTS_DIR = 'prompts';
/** Phone configuration templates, where provisioning/phones looks for them. */
export const IMAGE_PHONE_TEMPLATES_DIR = 'provisioning/templates';
export const IMAGE_DOCS_DIR = 'share/doc';
