export {
  type Address,
  HttpEndpoints,
  type HttpEndpointsOptions,
  type HttpEndpointsShape,
  type Readiness,
  readyzResponse
} from "./HttpEndpoints.ts"
