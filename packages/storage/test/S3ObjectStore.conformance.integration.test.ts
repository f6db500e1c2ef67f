import { S3ObjectStore } from "@db-backup-operator/storage"
import { freePort, S3Server } from "@db-backup-operator/testing"
import { Effect, Layer } from "effect"
import { Fixture, objectStoreConformance } from "./conformance.ts"

// The shared ObjectStore conformance suite against a real S3 server (versitygw).
const S3Fixture = Layer.effect(
  Fixture,
  Effect.gen(function* () {
    const s3 = yield* S3Server
    // Reserved a moment ago and released: nobody listens there.
    const deadPort = yield* freePort
    const options = {
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
    }
    let buckets = 0
    return Fixture.of({
      store: S3ObjectStore.make(options),
      freshBucket: Effect.suspend(() => {
        const name = `conformance-${++buckets}`
        return s3.createBucket(name).pipe(Effect.as(name))
      }),
      missingBucket: "conformance-no-such-bucket",
      denied: S3ObjectStore.make({
        ...options,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}-wrong` }
      }),
      unreachable: S3ObjectStore.make({ ...options, endpoint: `http://127.0.0.1:${deadPort}` })
    })
  })
).pipe(Layer.provide(S3Server.layer))

objectStoreConformance("S3ObjectStore (versitygw)", S3Fixture)
