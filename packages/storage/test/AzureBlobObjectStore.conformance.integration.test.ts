import { AzureBlobObjectStore } from "@db-backup-operator/storage"
import { Azurite, freePort } from "@db-backup-operator/testing"
import { Effect, Layer, Redacted } from "effect"
import { Fixture, objectStoreConformance } from "./conformance.ts"

// The shared ObjectStore conformance suite against the real Azurite.
const AzureFixture = Layer.effect(
  Fixture,
  Effect.gen(function* () {
    const azurite = yield* Azurite
    // Reserved a moment ago and released: nobody listens there.
    const deadPort = yield* freePort
    const options = {
      accountName: azurite.accountName,
      endpoint: azurite.endpoint,
      credentials: { accountKey: Redacted.make(azurite.accountKey) }
    }
    let containers = 0
    return Fixture.of({
      store: AzureBlobObjectStore.make(options),
      freshBucket: Effect.suspend(() => {
        const name = `conformance-${++containers}`
        return azurite.createContainer(name).pipe(Effect.as(name))
      }),
      missingBucket: "conformance-no-such-container",
      denied: AzureBlobObjectStore.make({
        ...options,
        credentials: { accountKey: Redacted.make(Buffer.from("not the account key").toString("base64")) }
      }),
      unreachable: AzureBlobObjectStore.make({
        ...options,
        endpoint: `http://127.0.0.1:${deadPort}/${azurite.accountName}`
      })
    })
  })
).pipe(Layer.provide(Azurite.layer))

objectStoreConformance("AzureBlobObjectStore (Azurite)", AzureFixture)
