import { GcsObjectStore } from "@db-backup-operator/storage"
import { freePort, GcsEmulator } from "@db-backup-operator/testing"
import { Effect, Layer } from "effect"
import { Fixture, objectStoreConformance } from "./conformance.ts"

// The shared ObjectStore conformance suite against the real fake-gcs-server.
const GcsFixture = Layer.effect(
  Fixture,
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    // Reserved a moment ago and released: nobody listens there.
    const deadPort = yield* freePort
    let buckets = 0
    return Fixture.of({
      store: GcsObjectStore.make({ apiEndpoint: gcs.endpoint }),
      freshBucket: Effect.suspend(() => {
        const name = `conformance-${++buckets}`
        return gcs.createBucket(name).pipe(Effect.as(name))
      }),
      missingBucket: "conformance-no-such-bucket",
      denied: undefined,
      unreachable: GcsObjectStore.make({ apiEndpoint: `http://127.0.0.1:${deadPort}` }),
      // fake-gcs-server takes a resumable upload's content type from the JSON body of the
      // initiating request, but @google-cloud/storage sends it as X-Upload-Content-Type (as GCS
      // documents), so the emulator stores application/octet-stream. User metadata is kept.
      uploadKeepsContentType: false,
      skipReasons: { denied: "fake-gcs-server checks no credentials" },
      // fake-gcs-server holds every object in its memory: a 2 GiB upload took it to 10 GB of RSS
      // and 2 minutes here. The client's streaming is what is tested (RSS bounded, whatever the size).
      largeBytes: 512 * 1024 * 1024
    })
  })
).pipe(Layer.provide(GcsEmulator.layer))

objectStoreConformance("GcsObjectStore conformance", GcsFixture)
