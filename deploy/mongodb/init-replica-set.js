// Run once by the mongodb-init container of deploy/docker-compose.yml (mongosh, as root):
// initiate the one-member replica set the services' transactions need, wait until it has a
// primary, then create or update one user per service. Running it again changes nothing but
// the passwords, which it sets to the current values of the environment.
//
// Each service may read and write its own database only: the services share nothing but
// events, and a leaked password of one opens no other service's data.

const replicaSet = process.env.MONGODB_REPLICA_SET || "rs0";
const host = process.env.MONGODB_REPLICA_HOST || "mongodb:27017";
const services = ["intake", "trajectory", "notifications", "learning", "analytics"];

try {
  rs.status();
  print(`replica set ${replicaSet} already initiated`);
} catch (error) {
  if (error.codeName !== "NotYetInitialized") {
    throw error;
  }
  rs.initiate({ _id: replicaSet, members: [{ _id: 0, host: host }] });
  print(`replica set ${replicaSet} initiated with ${host}`);
}

let primary = false;
for (let attempt = 0; attempt < 60 && !primary; attempt++) {
  primary = db.hello().isWritablePrimary === true;
  if (!primary) {
    sleep(1000);
  }
}
if (!primary) {
  throw new Error(`replica set ${replicaSet} has no primary after 60 seconds`);
}

const admin = db.getSiblingDB("admin");
for (const service of services) {
  const password = process.env[`MONGODB_${service.toUpperCase()}_PASSWORD`];
  if (!password) {
    throw new Error(`MONGODB_${service.toUpperCase()}_PASSWORD is not set`);
  }
  const user = `ketenbus-${service}`;
  const roles = [{ role: "readWrite", db: `ketenbus_${service}` }];
  if (admin.getUser(user) === null) {
    admin.createUser({ user: user, pwd: password, roles: roles });
    print(`created user ${user}`);
  } else {
    admin.updateUser(user, { pwd: password, roles: roles });
    print(`updated user ${user}`);
  }
}
