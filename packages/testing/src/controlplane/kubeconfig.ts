import type { Certificates } from "./certs.ts"

/**
 * A self-contained kubeconfig (certificates inlined as base64) for the admin
 * identity, with one context, `kube-testenv`.
 *
 * @example
 * ```ts
 * import { writeFile } from "node:fs/promises"
 * import type { Certificates } from "./certs.ts"
 * declare const path: string
 * declare const certs: Certificates
 * await writeFile(path, kubeconfigYaml("https://127.0.0.1:6443", certs), { mode: 0o600 })
 * ```
 */
export const kubeconfigYaml = (
  server: string,
  certs: Pick<Certificates, "caPem" | "clientCertPem" | "clientKeyPem">
): string => {
  const b64 = (pem: string) => Buffer.from(pem).toString("base64")
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: kube-testenv",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(certs.caPem)}`,
    "users:",
    "- name: kube-testenv-admin",
    "  user:",
    `    client-certificate-data: ${b64(certs.clientCertPem)}`,
    `    client-key-data: ${b64(certs.clientKeyPem)}`,
    "contexts:",
    "- name: kube-testenv",
    "  context:",
    "    cluster: kube-testenv",
    "    user: kube-testenv-admin",
    "    namespace: default",
    "current-context: kube-testenv",
    ""
  ].join("\n")
}
