/**
 * Quick start: server and client in one process on the embedded in-memory broker and backend.
 * No services needed:  npm install && npm run quickstart
 */
import { inspect } from 'node:util';
import { Server } from '../src/index.js';
import { add, appendUser } from './tasks.js';

// The default logger prints warnings and errors only; consoleLogger('info') shows the worker's life cycle.
const server = new Server({ statusExpires: 300, resultExpires: 300 });

// Register handlers into group "group1"; each registration returns a typed reference.
const addTask = server.add('group1', 'add', add);
const appendUserTask = server.add('group1', 'append_user', appendUser);

await server.run('group1', 3);
const client = server.client();

// send() returns the task id as soon as the broker holds the message.
const id1 = await client.send(addTask, 123, 44); // arguments are type-checked: (number, number)
const r1 = await client.getResult(id1, 2000, 300); // poll up to 2 s, every 300 ms at most
if (r1.isSuccess()) console.log('add(123, 44) =', r1.value); // narrowed by isSuccess(): r1.value is a number
else console.log('add failed:', r1.error?.message);

const id2 = await client.send(appendUserTask, { id: 1, name: 'aa' }, [322, 11], ['bb', 'cc']);
const r2 = await client.getResult(id2, 2000, 300);
console.log('appendUser ->', inspect(r2.value, { breakLength: Infinity })); // User[] | undefined

await server.shutdown();
