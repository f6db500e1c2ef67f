/**
 * `@db-backup-operator/testing`: a real local test environment as Effect layers
 * (PostgreSQL with or without TLS, a fake PostgreSQL that phishes for passwords,
 * a throwaway PKI, a GCS emulator, etcd + kube-apiserver + kube-controller-manager)
 * and as the `kube-testenv` CLI.
 *
 * @module
 */

export { Azurite, AzuriteError, type AzuriteOptions, type AzuriteShape } from "./azure/Azurite.ts"
export { BinariesError } from "./binaries/BinariesError.ts"
export { binCacheDir, cacheRoot, entryDir } from "./binaries/cache.ts"
export { ensureGoModuleBuilt, type GoModuleBuild } from "./binaries/goModule.ts"
export { Binaries, type BinaryName, type BinaryPaths, resolveBinaries } from "./binaries/resolve.ts"
export { goPackages, versions } from "./binaries/versions.ts"
export { envFileText, parseImageMapFlags } from "./cli/envFile.ts"
export { containerUlimitArgs } from "./containers/engine.ts"
export { buildScratchImage, imageExists, type ScratchImageOptions } from "./containers/image.ts"
export {
  inspectImage,
  type ListedContainer,
  type LocalImage,
  listContainers,
  podman,
  podmanAvailable,
  podmanChecked,
  removeContainers
} from "./containers/podman.ts"
export { adminKube, freshNamespace } from "./controlplane/adminKube.ts"
export {
  ControlPlane,
  type ControlPlaneOptions,
  type ControlPlaneShape
} from "./controlplane/ControlPlane.ts"
export { ControlPlaneError } from "./controlplane/ControlPlaneError.ts"
export { testControllers } from "./controlplane/controllerManager.ts"
export { kubeconfigYaml } from "./controlplane/kubeconfig.ts"
export type { Kubectl, KubectlResult } from "./controlplane/kubectl.ts"
export { GcsEmulator, GcsEmulatorError, type GcsEmulatorOptions, type GcsEmulatorShape } from "./gcs/GcsEmulator.ts"
export { type TlsOptions, tlsHttpClient } from "./http.ts"
export * from "./node/index.ts"
export { eventually, NotReady, type WaitOptions, waitUntilReady } from "./poll.ts"
export { freePort, freePorts, PortError } from "./ports.ts"
export {
  FakePostgres,
  FakePostgresError,
  type FakePostgresShape,
  type FakePostgresStartup
} from "./postgres/FakePostgres.ts"
export {
  Postgres,
  PostgresError,
  type PostgresOptions,
  type PostgresShape,
  type PostgresTls,
  type PsqlOptions
} from "./postgres/Postgres.ts"
export { quoteIdent, quoteLiteral } from "./postgres/sql.ts"
export { type Daemon, type DaemonOptions, startDaemon } from "./process/Daemon.ts"
export { ProcessError } from "./process/ProcessError.ts"
export { untilParentExits } from "./process/parent.ts"
export { listProcesses, liveGroupMembers, type ProcessInfo } from "./process/procfs.ts"
export { type RunOptions, type RunResult, runChecked, runProcess } from "./process/run.ts"
export { S3Server, S3ServerError, type S3ServerOptions, type S3ServerShape } from "./s3/S3Server.ts"
export {
  type CertificateAuthority,
  clientExtensions,
  createCertificateAuthority,
  type IssuedCertificate,
  issueCertificate,
  loopbackNames,
  makeTestPki,
  PkiError,
  serverExtensions,
  type TestPki
} from "./tls/pki.ts"
