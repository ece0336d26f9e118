/**
 * The protobuf classes that rocketmq-client-nodejs generated and ships. The client checks `instanceof`
 * against these very classes, so the transport uses them rather than its own.
 * They are CommonJS modules whose exports Node cannot list for ESM: import them whole, then pick.
 */
import definition from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';
import service from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/service_pb.js';

export { definition as pbDefinition, service as pbService };
