import { Crd } from "@db-backup-operator/operator"
import { crd } from "./ConfigMapGenerator.ts"

// Prints the generated CRD: `node crd.ts | kubectl apply --server-side -f -`.
process.stdout.write(Crd.toYaml(crd, { source: "packages/operator/examples/configmap-generator" }))
